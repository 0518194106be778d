"""The package's shape: layers that import only downward, no circles, no private
names across folders, a public API that the docs' imports really give.

``lint-imports`` checks the contracts of ``pyproject.toml``; the rest is
checked here from the real import graph (grimp, which import-linter uses).
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "napari_gifnet"
LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))


def _lint(cwd: Path, src: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(src)}
    return subprocess.run([LINT, "--config", str(cwd / "pyproject.toml"), "--no-cache"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip


def test_import_contracts_are_kept() -> None:
    done = _lint(ROOT, SRC)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


#: One forbidden import per contract: (module, planted line, the contract it breaks).
PLANTED = [
    ("engine/colour.py", "import napari", "Only the plugin imports napari"),
    ("model/network.py", "from ..plugin import writer", "Layers import only downward"),
    ("io/images.py", "import torch", "never import torch"),
    ("plugin/writer.py", "import qtpy", "Only the plugin's Qt widgets import Qt"),
]


def test_a_forbidden_import_breaks_its_contract(tmp_path: Path) -> None:
    """The contracts can fail: forbidden imports planted in one copy of the package,
    one linter run, each planted import reported under its own contract."""
    shutil.copytree(PACKAGE, tmp_path / "src" / "napari_gifnet",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for module, line, _ in PLANTED:
        target = tmp_path / "src" / "napari_gifnet" / module
        target.write_text(target.read_text() + f"\n{line}  # planted\n")
    done = _lint(tmp_path, tmp_path / "src")
    assert done.returncode != 0
    broken = [line for line in done.stdout.splitlines() if line.endswith(" BROKEN")]
    for _, _, contract in PLANTED:
        assert any(contract in line for line in broken), (contract, done.stdout)


def test_every_qt_free_plugin_module_is_under_the_qt_contract() -> None:
    """The Qt contract lists the plugin's modules outside ``_qt/`` one by one (a
    contract cannot name a folder minus a subfolder): a new module must join it."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pytest's own TOML reader
        import tomli as tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    qt = next(c for c in contracts["contracts"] if "Qt widgets" in c["name"])
    modules = {f"napari_gifnet.plugin.{p.stem}" for p in (PACKAGE / "plugin").glob("*.py")
               if p.stem != "__init__"}  # fmt: skip
    assert modules - set(qt["source_modules"]) == set()


def _graph():
    import grimp

    return grimp.build_graph("napari_gifnet", cache_dir=None)


def test_no_import_circles() -> None:
    graph = _graph()
    modules = sorted(graph.modules)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w == "napari_gifnet" or v == "napari_gifnet":
                continue  # the root package (__version__, lazy names) is not a layer
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for m in modules:
        if m not in index:
            visit(m)
    assert circles == []


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_private_name_crosses_a_folder() -> None:
    """A subpackage's ``_private`` modules and names are used inside it only."""
    crossings = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(SRC).with_suffix("")
        parts = list(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        package = parts if rel.name == "__init__" else parts[:-1]
        here = ".".join(parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            if not target.startswith("napari_gifnet"):
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                private = [p for p in full.split(".")[1:] if p.startswith("_")
                           and not p.startswith("__")]  # fmt: skip
                if private and _subpackage(full) != _subpackage(here):
                    crossings.append(f"{here} imports {full}")
    assert crossings == []


def test_only_the_package_entry_points_sit_at_the_top() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py"]


#: The public API: name -> the module that defines it and what it is.
PUBLIC = {
    "fuse": ("napari_gifnet.workflows.tasks", "function"),
    "FusionResult": ("napari_gifnet.engine.result", "class"),
    "fuse_layers": ("napari_gifnet.plugin.layer_fusion", "function"),
    "fuse_stack": ("napari_gifnet.workflows.focus_stack", "function"),
    "pansharpen": ("napari_gifnet.workflows.pansharpening", "function"),
    "enhance": ("napari_gifnet.workflows.enhancement", "function"),
    "register": ("napari_gifnet.workflows.registration", "function"),
    "__version__": (None, "str"),
}

_FRESH = """
import contextlib, inspect, io, json, sys
import napari_gifnet
light = {"torch": "torch" in sys.modules, "napari": "napari" in sys.modules}
from napari_gifnet.cli.main import main
with contextlib.redirect_stdout(io.StringIO()) as text:
    code = main(["--help"])
light["help"] = [code, "usage" in text.getvalue(), "torch" in sys.modules]
import napari_gifnet.plugin._qt.fusion_widget
light["widget registration"] = "napari_gifnet.workflows.registration" in sys.modules
napari_gifnet.fuse_layers
light["widget torch"] = "torch" in sys.modules
names = list(napari_gifnet.__all__)
out = {}
for name in names:
    ns = {}
    exec(f"from napari_gifnet import {name} as obj", ns)
    obj = ns["obj"]
    kind = ("module" if inspect.ismodule(obj) else "class" if inspect.isclass(obj)
            else "function" if inspect.isfunction(obj) else type(obj).__name__)
    out[name] = [getattr(obj, "__module__", None) if kind != "str" else None, kind]
print(json.dumps({"light": light, "all": names, "names": out}))
"""


def test_every_public_name_imports_as_documented_in_a_fresh_interpreter() -> None:
    """One fresh interpreter: ``import napari_gifnet`` imports neither torch nor napari,
    ``napari-gifnet --help``, the fusion widget's module and ``fuse_layers``'s do not
    import torch, nor the widget's module the registration code; then
    every public name comes from the module the docs say."""
    env = {"PYTHONPATH": str(SRC), "PATH": "", "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", _FRESH], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["light"] == {
        "torch": False, "napari": False,  # import napari_gifnet is cheap
        "help": [0, True, False],  # so is the command line's help
        "widget torch": False,  # the widget imports torch when it runs
        "widget registration": False,  # and the registration code (SciPy) when it registers
    }  # fmt: skip
    assert sorted(report["all"]) == sorted(PUBLIC)
    assert {k: tuple(v) for k, v in report["names"].items()} == PUBLIC
