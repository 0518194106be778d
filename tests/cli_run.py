"""Running the command line in-process and checking its one-line errors (shared by the CLI tests)."""

from __future__ import annotations

import pytest

from napari_gifnet.cli.main import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)`` -> (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, match: str = "") -> str:
    """Assert ``err`` is one ``napari-gifnet: error: ...`` line holding ``match``; return it."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("napari-gifnet: error: "), lines[0]
    assert match in lines[0], lines[0]
    return lines[0]
