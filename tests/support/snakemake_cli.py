"""Running the real `snakemake` CLI on this repository's Snakefile, for the workflow tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE_TIMEOUT_S = 900  # bounds a hung run; a tiny demo takes about a minute


def snakemake_command(workdir: Path, config: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        *args,
    ]


def run_snakemake(workdir: Path, config: Path, *args: str, check: bool = True):
    """Run snakemake in ``workdir`` with ``config``; raise with its output when ``check`` fails."""
    result = subprocess.run(
        snakemake_command(workdir, config, *args),
        capture_output=True,
        text=True,
        timeout=SNAKEMAKE_TIMEOUT_S,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        )
    return result
