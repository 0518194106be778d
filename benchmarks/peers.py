"""The peers a user would install instead, each in its own virtual environment.

A peer is never a project dependency: the benchmarks run it with the Python
of its own environment, ``$NAPARI_GIFNET_PEER_<NAME>`` or
``/work/peers/<name>/bin/python``, in a subprocess, and leave its rows out
with a note when it is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def peer_python(name: str) -> str | None:
    """The Python of peer ``name``'s environment, or None when it is not installed."""
    path = os.environ.get(f"NAPARI_GIFNET_PEER_{name.upper()}", f"/work/peers/{name}/bin/python")
    return path if Path(path).is_file() else None


def run_driver(python: str, driver: str, jobs: list[dict[str, Any]], cwd: Path,
               what: str) -> dict[str, Any] | None:  # fmt: skip
    """Run ``driver`` (Python source taking the JSON ``jobs`` as its argument and printing
    a JSON object as its last line) with the peer's ``python``; that object, or None
    with a note naming ``what`` failed."""
    proc = subprocess.run([python, "-c", driver, json.dumps(jobs)],
                          capture_output=True, text=True, cwd=cwd)  # fmt: skip
    if proc.returncode != 0:
        print(f"note: {what} failed: {proc.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])
