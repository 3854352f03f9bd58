"""Shared fixtures: where the reference data lives (skipping when it is absent), and the one
full run of the tiny demo that the workflow tests share."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.snakemake_cli import run_snakemake

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO_ROOT / "tests" / "workflow" / "tiny" / "config.yaml"
# ../shared beside the checkout holds reference data for developers and CI; users do not have it.
SHARED_REFERENCE = REPO_ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """Path to ``../shared/reference``; skips the test when it is absent (users' clones)."""
    if not SHARED_REFERENCE.is_dir():
        pytest.skip(
            f"reference data not found at {SHARED_REFERENCE} (only developers and CI have it)"
        )
    return SHARED_REFERENCE


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A working directory where the whole tiny demo (tests/workflow/tiny/config.yaml, copied to
    ``config.yaml`` there) ran to completion. Shared by every test of the session: read it, plan
    in it (``--dry-run``), never run jobs in it; a test that changes outputs copies it first."""
    workdir = tmp_path_factory.mktemp("tiny_run")
    shutil.copy(TINY_CONFIG, workdir / "config.yaml")
    run_snakemake(workdir, workdir / "config.yaml", "--cores", "2")
    return workdir
