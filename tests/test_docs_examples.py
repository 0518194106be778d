"""Every Python example in README.md and docs/*.md runs, on small data.

The fenced ``python`` blocks of a file run in order in one namespace (a
later block may use what an earlier one made), in a temporary folder that
holds the files the examples name. The free names the prose stands for
(``infrared``, ``visible``, ``a``, ``b``, ``image``, ``stack``, ``ms``,
``pan``, ``dask_a``, ``dask_b``, ``viewer``) are small arrays or a napari
viewer. Signatures and shell commands are ``text``/``bash`` blocks and do
not run. The dotted names the prose gives (``napari_gifnet.x.y``) must
exist where it says.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
DOTTED = re.compile(r"napari_gifnet(?:\.[A-Za-z_]\w*)+")


def _blocks(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 2, m.group(1)) for m in BLOCK.finditer(text)]


WITH_CODE = [p for p in DOCS if _blocks(p)]


def _arrays() -> dict[str, object]:
    import dask.array as da

    rng = np.random.default_rng(0)
    grey = lambda: (rng.random((64, 64)) * 255).astype(np.uint8)  # noqa: E731
    return {
        "infrared": grey(), "visible": grey(), "a": grey(), "b": grey(), "image": grey(),
        "stack": rng.random((3, 64, 64)).astype(np.float32),
        "bracket": rng.random((3, 64, 64, 3)).astype(np.float32),
        "ms": (rng.random((4, 64, 64)) * 4000).astype(np.uint16),
        "pan": (rng.random((64, 64)) * 4000).astype(np.uint16),
        "dask_a": da.from_array(rng.random((2, 64, 64)).astype(np.float32), chunks=(1, 64, 64)),
        "dask_b": da.from_array(rng.random((2, 64, 64)).astype(np.float32), chunks=(1, 64, 64)),
    }  # fmt: skip


def _files(folder: Path, weights: Path) -> None:
    """The files the examples read: zarr stacks, a folder of pairs, the checkpoint."""
    import zarr

    from napari_gifnet.io import write_image

    rng = np.random.default_rng(1)
    for name in ("pet.zarr", "mri.zarr"):
        z = zarr.open(str(folder / name), mode="w", shape=(2, 64, 64), chunks=(1, 64, 64),
                      dtype="uint16")  # fmt: skip
        z[:] = (rng.random((2, 64, 64)) * 4000).astype(np.uint16)
    for sub in ("first", "second"):
        (folder / "my_pairs" / sub).mkdir(parents=True)
        for i in range(2):
            write_image(folder / "my_pairs" / sub / f"p{i}.png",
                        (rng.random((48, 48)) * 255).astype(np.uint8))  # fmt: skip
    (folder / "gifnet-official.pth").symlink_to(weights)


@pytest.mark.parametrize("doc", WITH_CODE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_examples_run(
    doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference_weights: Path,
    request: pytest.FixtureRequest,
) -> None:
    blocks = _blocks(doc)
    monkeypatch.setenv("GIFNET_WEIGHTS", str(reference_weights))
    monkeypatch.chdir(tmp_path)
    _files(tmp_path, reference_weights)
    namespace: dict[str, object] = {"__name__": f"docs_example_{doc.stem}", **_arrays()}
    if any("viewer" in code for _, code in blocks):
        request.getfixturevalue("gifnet_plugin")
        namespace["viewer"] = request.getfixturevalue("make_napari_viewer")()
    for line, code in blocks:
        try:
            exec(compile(code, f"{doc.name}:{line}", "exec"), namespace)
        except Exception as exc:  # noqa: BLE001 - name the block that failed
            raise AssertionError(f"the example at {doc.name}:{line} fails: {exc!r}") from exc


def _resolves(name: str) -> bool:
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            if not hasattr(obj, part):
                return False
            obj = getattr(obj, part)
        return True
    return False


def test_the_names_the_prose_gives_exist() -> None:
    missing = [f"{doc.name}: {name}" for doc in DOCS
               for name in sorted(set(DOTTED.findall(doc.read_text(encoding="utf-8"))))
               if not _resolves(name)]  # fmt: skip
    assert missing == []
