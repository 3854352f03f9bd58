"""Shared fixtures: where the reference data lives, and skipping when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
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
