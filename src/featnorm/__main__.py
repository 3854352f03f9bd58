from featnorm.cli.main import main

raise SystemExit(main())
