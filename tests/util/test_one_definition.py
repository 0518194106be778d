"""Shared rules are written once: the source defines each in one module only.

Read from the source's syntax trees (no import): numbers in docstrings and
comments do not count, only values and definitions the code uses.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import napari_gifnet

SRC = Path(napari_gifnet.__file__).parent


@cache
def _trees() -> dict[str, ast.Module]:
    return {
        p.relative_to(SRC).as_posix(): ast.parse(p.read_text(encoding="utf-8"))
        for p in sorted(SRC.rglob("*.py"))
    }


def _where(found) -> list[str]:
    return sorted(
        {name for name, tree in _trees().items() if any(found(n) for n in ast.walk(tree))}
    )


def _number(value: float):
    return lambda n: isinstance(n, ast.Constant) and type(n.value) is float and n.value == value


def test_the_bt601_weights_and_the_percentile_range_are_written_once() -> None:
    assert _where(_number(0.587)) == ["engine/colour.py"]  # BT.601 green weight
    assert _where(_number(99.9)) == ["engine/preprocess.py"]  # the robust range's top


def test_the_progress_type_and_is_dask_are_defined_once() -> None:
    def progress_alias(n: ast.AST) -> bool:  # X = Callable[[int, int], Any]
        return (
            isinstance(n, ast.Assign)
            and isinstance(n.value, ast.Subscript)
            and (ast.unparse(n.value).replace(" ", "") == "Callable[[int,int],Any]")
        )

    def dask_check(n: ast.AST) -> bool:
        return isinstance(n, ast.FunctionDef) and n.name.lstrip("_") == "is_dask"

    assert _where(progress_alias) == ["util/progress.py"]
    assert _where(dask_check) == ["engine/lazy.py"]
