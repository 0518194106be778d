"""One import path per name: each name is imported from the module that defines it.

Read from the source (no import): a module's ``__all__`` lists only names it
defines, and every ``from napari_gifnet.x import name`` (in the package, the
tests, the benchmarks and the docs' scripts) and every ``module.name`` through
an imported package module in the package reaches ``name`` where it is
defined. The
exceptions are the documented namespaces (:data:`NAMESPACES`) and a public
module giving a name of its folder's private module (``_name.py``) its public
path, since private modules are not imported across folders
(``model.network.TransformerBlock``, defined in ``model/_transformer.py``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

#: Packages whose names are documented at the package's path (README, docs/).
NAMESPACES = {
    "napari_gifnet",  # the public API
    "napari_gifnet.engine",  # ``from napari_gifnet.engine import fusion_run`` (docs/engine.md)
    "napari_gifnet.io",  # ``napari_gifnet.io.image_info``, ``write_image`` (docs/stacks.md)
    "napari_gifnet.metrics",  # ``napari_gifnet.metrics.fusion_metrics`` (its docstring)
    "napari_gifnet.training",  # ``published_ms_ssim`` (its docstring)
}
#: Re-exports still to remove: module -> names it gives but does not define.
PENDING: dict[str, set[str]] = {}


@dataclass
class Module:
    """What the source of one module says about its names."""

    name: str
    is_package: bool
    tree: ast.Module
    defined: set[str] = field(default_factory=set)
    #: top-level ``from x import y [as z]``: z -> (module x, name y)
    imported: dict[str, tuple[str, str]] = field(default_factory=dict)


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _target(node: ast.ImportFrom, here: str, is_package: bool) -> str:
    """The absolute module of ``from ... import``, for a module called ``here``."""
    if not node.level:
        return node.module or ""
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _top_level(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            handlers = [n for h in node.handlers for n in h.body]
            yield from _top_level(node.body + handlers + node.orelse + node.finalbody)


def _class_alias(node: ast.Assign, module: Module) -> bool:
    """``Alias = Name``, another name for an imported class (a constant set from
    another, ``MIN_TILE = WINDOW``, says something of its own)."""
    value = node.value
    if not isinstance(value, ast.Name) or value.id not in module.imported:
        return False
    return value.id[0].isupper() and not value.id.isupper()


@cache
def _modules() -> dict[str, Module]:
    modules = {}
    for path in sorted((SRC / "napari_gifnet").rglob("*.py")):
        name, is_package = _module_name(path)
        module = Module(name, is_package, ast.parse(path.read_text(encoding="utf-8")))
        for node in _top_level(module.tree.body):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                module.defined.add(node.name)
            elif isinstance(node, ast.Assign) and _class_alias(node, module):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        module.imported[target.id] = module.imported[node.value.id]
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    names = (n.id for n in ast.walk(target) if isinstance(n, ast.Name))
                    module.defined.update(names)
            elif isinstance(node, ast.ImportFrom):
                source = _target(node, name, is_package)
                for alias in node.names:
                    module.imported[alias.asname or alias.name] = (source, alias.name)
        modules[name] = module
    return modules


def _allowed(module: str, name: str) -> bool:
    """Whether ``module.name`` is the one path of ``name``."""
    modules = _modules()
    if f"{module}.{name}" in modules or module in NAMESPACES:
        return True
    if name in modules[module].defined or name in PENDING.get(module, ()):
        return True
    source, original = modules[module].imported.get(name, ("", ""))
    folder, _, leaf = source.rpartition(".")
    public = not any(part.startswith("_") for part in module.split("."))
    private_sibling = leaf.startswith("_") and folder == module.rpartition(".")[0]
    return public and private_sibling and original in modules[source].defined


def test_every_all_lists_names_its_module_defines() -> None:
    wrong = []
    for module in _modules().values():
        for node in module.tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                names = ast.literal_eval(node.value)
                wrong += [f"{module.name}.{n}" for n in names if not _allowed(module.name, n)]
    assert wrong == [], "re-exported in __all__, import them where they are defined"


def _files() -> Iterator[Path]:
    yield from (SRC / "napari_gifnet").rglob("*.py")
    for folder in ("tests", "benchmarks", "docs"):
        yield from (ROOT / folder).rglob("*.py")


def _attributes_through_modules(
    tree: ast.Module, aliases: dict[str, str]
) -> Iterator[ast.Attribute]:
    """``module.name`` where ``module`` names an imported module of the package."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in aliases and not node.attr.startswith("__"):
                yield node


def test_every_import_names_the_module_that_defines_the_name() -> None:
    modules, wrong = _modules(), []
    for path in _files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        here, is_package = _module_name(path) if path.is_relative_to(SRC) else ("", False)
        aliases = {}  # a module imported under a name -> that module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _target(node, here, is_package)
                for alias in node.names:
                    if f"{source}.{alias.name}" in modules:
                        aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
                    elif source in modules and not _allowed(source, alias.name):
                        wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} {alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname and alias.name in modules:
                        aliases[alias.asname] = alias.name
        if not here:  # tests read and patch module attributes on purpose
            continue
        for node in _attributes_through_modules(tree, aliases):
            module = aliases[node.value.id]
            if not _allowed(module, node.attr):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} {module}.{node.attr}")
    assert wrong == [], "import each name from the module that defines it"


def test_the_check_sees_a_re_export() -> None:
    """A planted re-export (a name imported from elsewhere) is found by the rule."""
    modules = _modules()
    assert not _allowed("napari_gifnet.io.images", "check_writable")  # defined in formats
    assert _allowed("napari_gifnet.io.formats", "check_writable")
    assert _allowed("napari_gifnet.io", "check_writable")  # the documented namespace
    assert not _allowed("napari_gifnet.plugin._qt.stack_widget", "JobWidget")  # in _qt/_job
    assert _allowed("napari_gifnet.model.network", "TransformerBlock")  # in model/_transformer
    assert "put_image" in modules["napari_gifnet.plugin.layer_output"].defined
