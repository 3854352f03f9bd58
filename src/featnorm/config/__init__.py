"""Configuration checks, architecture tables and demo parameters: torch- and OpenCV-free, so
that planning a run (``snakemake -n``) needs neither."""
