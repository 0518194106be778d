"""Shared pytest fixtures.

The reference material (published checkpoint, example pairs, official
outputs) lives outside the repository, in ``../shared/reference`` relative to
the repository root; it is read from there and never copied into the repo.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REFERENCE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def _missing(what: str) -> None:
    message = f"reference material missing: {what}"
    if os.environ.get("GIFNET_REQUIRE_REFERENCE") == "1":
        pytest.fail(message + " (GIFNET_REQUIRE_REFERENCE=1)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Path of ``../shared/reference`` (skip, or fail if required, when absent)."""
    if not REFERENCE_DIR.is_dir():
        _missing(str(REFERENCE_DIR))
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def reference_weights(reference_dir: Path) -> Path:
    """Path of the published checkpoint in the reference directory."""
    path = reference_dir / "weights" / "gifnet-official.pth"
    if not path.is_file():
        _missing(str(path))
    return path
