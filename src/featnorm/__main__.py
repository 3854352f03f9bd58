from featnorm.cli import main

raise SystemExit(main())
