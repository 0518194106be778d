"""The npe2 manifest: valid, the same file at the root and in the package, shipped in wheels."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "napari.yaml"
IN_PACKAGE = ROOT / "src" / "napari_gifnet" / "napari.yaml"


#: The napari menus (npe2 ``menus`` ids, napari >= 0.5) and the widget commands in each.
MENUS = {
    "napari/layers/filter": ["napari-gifnet.fusion_widget", "napari-gifnet.enhance_widget",
                             "napari-gifnet.pansharpen_widget"],
    "napari/layers/project": ["napari-gifnet.stack_widget"],
    "napari/layers/measure": ["napari-gifnet.metrics_widget"],
}
#: The documents that name napari menus, checked against the real menu bar.
DOCUMENTS = [ROOT / "README.md", *(ROOT / "docs" / f"{name}.md" for name in (
    "walkthrough", "samples", "enhancement", "pansharpening", "stacks"))]


def _npe2() -> list[str]:
    exe = Path(sys.executable).with_name("npe2")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "npe2"]


def _widget_names() -> list[str]:
    import npe2

    widgets = npe2.PluginManifest.from_file(MANIFEST).contributions.widgets or []
    names = [w.display_name for w in widgets]
    assert "GIFNet fusion" in names
    return names


def test_root_manifest_is_the_package_manifest() -> None:
    assert MANIFEST.is_file() and IN_PACKAGE.is_file()
    assert IN_PACKAGE.resolve() == MANIFEST.resolve()  # a link, so they never drift


def test_npe2_validate_with_imports() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [*_npe2(), "validate", str(MANIFEST), "--imports"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout.lower()


def test_menus_put_the_widgets_under_layers() -> None:
    import npe2

    manifest = npe2.PluginManifest.from_file(MANIFEST)
    menus = {key: [item.command for item in items]
             for key, items in manifest.contributions.menus.items()}
    assert menus == MENUS
    widgets = {w.command for w in manifest.contributions.widgets or []}
    plugins_only = {"napari-gifnet.finetune_widget"}  # no Layers menu fits training
    assert {c for commands in MENUS.values() for c in commands} | plugins_only == widgets


def test_sample_names_say_offline_or_download() -> None:
    """File > Open Sample tells which samples work offline; pansharpening has one."""
    import npe2

    manifest = npe2.PluginManifest.from_file(MANIFEST)
    titles = {s.key: s.display_name for s in manifest.contributions.sample_data}
    for key, title in titles.items():
        published = key.startswith("published_")
        assert title.endswith("(download)" if published else "offline)"), (key, title)
    assert "published_remote" in titles and "pansharpening" in titles
    assert "panchromatic" in titles["pansharpening"]


def test_menu_ids_are_napari_contributable_menus() -> None:
    from napari._app_model.constants import MenuId
    from napari._app_model.constants._menus import is_menu_contributable

    assert {MenuId.LAYERS_FILTER, MenuId.LAYERS_PROJECT, MenuId.LAYERS_MEASURE} == set(MENUS)
    assert all(is_menu_contributable(key) for key in MENUS)


def test_reader_takes_tiffs_whatever_the_case(gifnet_plugin: str) -> None:
    import npe2

    manifest = npe2.PluginManifest.from_file(MANIFEST)
    (reader,) = manifest.contributions.readers
    assert reader.command == "napari-gifnet.read_tiff" and not reader.accepts_directories
    assert set(reader.filename_patterns) == {"*.tif", "*.tiff"}
    manager = npe2.PluginManager.instance()
    for name in ("fused.tif", "FUSED.TIFF", "a.b.Tif"):
        found = {r.command for r in manager.iter_compatible_readers([name])}
        assert "napari-gifnet.read_tiff" in found, name
    assert not {r.command for r in manager.iter_compatible_readers(["fused.png"])} & {
        "napari-gifnet.read_tiff"}


def _menubar_paths(viewer) -> set[tuple[str, ...]]:
    """Every item of the window's menu bar as its path of titles (without '&')."""
    paths: set[tuple[str, ...]] = set()

    def walk(menu, path: tuple[str, ...]) -> None:
        menu.aboutToShow.emit()  # plugin submenus fill themselves when shown
        for action in menu.actions():
            title = action.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
            if not title:
                continue
            paths.add((*path, title))
            if action.menu() is not None:
                walk(action.menu(), (*path, title))

    for action in viewer.window._qt_window.menuBar().actions():
        if action.menu() is not None:
            title = action.text().replace("&", "")
            paths.add((title,))
            walk(action.menu(), (title,))
    return paths


def test_menu_items_appear_in_a_viewer(make_napari_viewer, gifnet_plugin: str) -> None:
    """In napari's app-model menus and in the window's menu bar, under Layers and Plugins."""
    from app_model.types import MenuItem
    from napari._app_model import get_app_model

    viewer = make_napari_viewer()
    app = get_app_model()
    for menu_id, commands in MENUS.items():
        found = [item.command.id for item in app.menus.get_menu(menu_id)
                 if isinstance(item, MenuItem)]
        mine = [c for c in found if c.startswith("napari-gifnet.")]
        assert sorted(mine) == sorted(commands), menu_id  # (in the widgets' order)
    paths = _menubar_paths(viewer)
    for shown in [
        ("Layers", "Filter", "GIFNet fusion (GIFNet image fusion)"),
        ("Layers", "Filter", "Enhance one image (GIFNet image fusion)"),
        ("Layers", "Filter", "Pansharpen (GIFNet image fusion)"),
        ("Layers", "Project", "Focus stack (GIFNet image fusion)"),
        ("Layers", "Measure", "Fusion metrics (GIFNet image fusion)"),
        ("Plugins", "GIFNet image fusion", "GIFNet fusion (GIFNet image fusion)"),
        ("Plugins", "GIFNet image fusion", "Focus stack (GIFNet image fusion)"),
        ("Plugins", "GIFNet image fusion", "Fine-tune GIFNet (GIFNet image fusion)"),
        ("File", "Open Sample", "GIFNet image fusion"),
        ("File", "Save Selected Layers..."),
        ("File", "Open File(s)..."),
    ]:
        assert shown in paths, shown
    # every menu path the documents name (in bold, "**File > ...**") is really there
    named = set()
    for document in DOCUMENTS:
        for match in re.finditer(r"\*\*((?:File|View|Layers|Plugins|Window|Help) > [^*]+)\*\*",
                                 document.read_text(encoding="utf-8")):
            named.add((document.name, tuple(match.group(1).split(" > "))))
    assert {d for d, _ in named} == {d.name for d in DOCUMENTS}
    missing = [(d, " > ".join(p)) for d, p in sorted(named) if p not in paths]
    assert not missing, missing


def test_every_command_resolves_to_a_callable() -> None:
    import importlib

    import npe2

    manifest = npe2.PluginManifest.from_file(MANIFEST)
    for command in manifest.contributions.commands or []:
        module, _, attr = command.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), command.id


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once for the tests of this module."""
    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(dist), str(ROOT)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (built,) = dist.glob("napari_gifnet-*.whl")
    return built


def test_wheel_ships_the_manifest_and_npe2_discovers_it(tmp_path: Path, wheel: Path) -> None:
    """Unpack the wheel into a fresh folder and let npe2 discover it there."""
    with zipfile.ZipFile(wheel) as zf:
        shipped = zf.read("napari_gifnet/napari.yaml").decode()
        entry_points = next(n for n in zf.namelist() if n.endswith("entry_points.txt"))
        assert "napari_gifnet:napari.yaml" in zf.read(entry_points).decode()
    assert shipped == MANIFEST.read_text()  # the real file, not a dangling link
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    # A clean interpreter (no site hooks, so no editable install) that sees the
    # unpacked wheel first and this environment's packages after it.
    script = (
        "import importlib.util, json, npe2\n"
        "pm = npe2.PluginManager()\n"
        "pm.discover()\n"
        "c = pm.get_manifest('napari-gifnet').contributions\n"
        "spec = importlib.util.find_spec('napari_gifnet')\n"
        "print(json.dumps({'location': list(spec.submodule_search_locations),\n"
        "  'widgets': [w.display_name for w in c.widgets or []],\n"
        "  'samples': [s.key for s in c.sample_data or []],\n"
        "  'writers': [w.command for w in c.writers or []],\n"
        "  'readers': [r.command for r in c.readers or []]}))\n"
    )
    env = {
        "PYTHONPATH": os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]]),
        "PATH": os.environ.get("PATH", ""),
    }
    out = subprocess.run(
        [sys.executable, "-S", "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(found["location"][0]).is_relative_to(target)
    assert found["widgets"] == _widget_names()
    assert {"multifocus", "medical", "pansharpening", "published_ivif"} <= set(found["samples"])
    assert found["writers"] == ["napari-gifnet.write_tiff"]
    assert found["readers"] == ["napari-gifnet.read_tiff"]


def test_installed_distribution_serves_the_repository_manifest() -> None:
    """In an editable install (as CI makes), npe2 reads the manifest in src/."""
    import importlib.metadata

    try:
        importlib.metadata.distribution("napari-gifnet")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("napari-gifnet is not installed (running from the source tree)")
    import npe2

    manifest = npe2.PluginManifest.from_distribution("napari-gifnet")
    assert manifest.name == "napari-gifnet"
    widgets = [w.display_name for w in manifest.contributions.widgets or []]
    assert widgets == _widget_names()
    samples = {s.key for s in manifest.contributions.sample_data or []}
    assert samples == {
        s.key for s in npe2.PluginManifest.from_file(MANIFEST).contributions.sample_data
    }


def test_wheel_in_a_fresh_virtual_environment_declares_the_plugin(
    tmp_path: Path, wheel: Path
) -> None:
    """A new venv holding nothing but the wheel: the napari.manifest entry point
    leads to the packaged manifest, which lists the contributions."""
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    clean = {"PATH": os.environ.get("PATH", "")}  # nothing from this environment
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", str(wheel)],
        capture_output=True, text=True, env=clean, check=True,
    )
    script = (
        "import importlib.metadata as md, importlib.util, json, pathlib\n"
        "(ep,) = [e for e in md.entry_points(group='napari.manifest') if e.name == 'napari-gifnet']\n"
        "module, _, name = ep.value.partition(':')\n"
        "folder = importlib.util.find_spec(module).submodule_search_locations[0]\n"
        "path = pathlib.Path(folder) / name\n"
        "print(json.dumps({'path': str(path), 'text': path.read_text()}))\n"
    )
    out = subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, env=clean, check=False
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    import json

    found = json.loads(out.stdout)
    assert Path(found["path"]).is_relative_to(venv)
    assert found["text"] == MANIFEST.read_text()
    assert "display_name: GIFNet fusion" in found["text"]
    assert "command: napari-gifnet.write_tiff" in found["text"]
    assert "command: napari-gifnet.read_tiff" in found["text"]
