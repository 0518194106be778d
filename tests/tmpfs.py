"""A real small file system for tests: a tmpfs mounted on a folder (needs the superuser)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def mounted_tmpfs(folder: Path, size: int, *, read_only: bool = False) -> Iterator[Path]:
    """Mount an empty tmpfs of ``size`` bytes on ``folder`` (created), unmounted afterwards.

    Skips the test where mounting is not permitted (not root, or no mount
    capability in the container).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs the superuser")
    options = f"{'ro,' if read_only else ''}size={size}"
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                              capture_output=True, text=True, check=False)  # fmt: skip
    except OSError as exc:
        pytest.skip(f"mount is not available: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
