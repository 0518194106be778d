"""Tests of the "Fine-tune GIFNet" dock widget (pytest-qt, napari viewer under Xvfb).

Tiny runs: 48 x 48 synthetic pairs, 32-pixel crops, batch 2, 2-3 steps, from
the published checkpoint, with the offline random DenseNet-121 fallback.
``napari_gifnet.training.loop.train`` is wrapped (not replaced) to record the
thread its progress callback runs in and, for Cancel, to hold the run after
its first step until Cancel has been pressed.
"""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.utils.notifications import notification_manager

from napari_gifnet import fuse
from napari_gifnet.training.synthetic import synthetic_pair, write_synthetic_pairs

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_timm_hub")

DONE_MS = 300_000


@pytest.fixture(autouse=True)
def _own_settings(tmp_path, monkeypatch):
    """Each test's widgets remember their settings in a file of its own (never the user's)."""
    monkeypatch.setenv("NAPARI_GIFNET_SETTINGS", str(tmp_path / "settings.ini"))


@pytest.fixture
def spy(monkeypatch):
    """Wrap ``loop.train``: record the progress threads, the configs, an optional gate."""
    from napari_gifnet.training import loop

    real = loop.train
    record: dict = {"threads": [], "configs": [], "files": [], "gate": None, "gate_at": None}

    def train(config, *, progress=None, on_step=None):
        record["configs"].append(config)
        record["files"].append(sorted(p.name for p in (Path(config.pairs) / "first").iterdir()))

        def watched(done, total):
            record["threads"].append(threading.current_thread())
            if record["gate"] is not None and done == record["gate_at"]:
                assert record["gate"].wait(60)
            return progress(done, total)

        return real(config, progress=watched, on_step=on_step)

    monkeypatch.setattr(loop, "train", train)
    return record


def _widget(viewer, tmp_path: Path, steps: int = 3):
    from napari_gifnet.plugin._qt.finetune_widget import FinetuneWidget

    widget = FinetuneWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fine-tune GIFNet")
    widget.steps.value, widget.batch_size.value, widget.crop.value = steps, 2, 32
    widget.device.value = "cpu"
    widget.out.value = str(tmp_path / "run" / "tuned.pth")
    return widget


def _pairs(tmp_path: Path) -> Path:
    return write_synthetic_pairs(tmp_path / "pairs", n=4, size=48, seed=1)


def _fuses(path: Path) -> None:
    a, b = (np.random.default_rng(i).random((40, 36)).astype(np.float32) for i in (1, 2))
    fused = fuse(a, b, weights=path)
    assert fused.image.shape == (40, 36) and np.isfinite(fused.image).all()


def _log_rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _step_ticks(widget) -> list[str]:
    """The loss plot's step tick labels as drawn."""
    widget.canvas.draw()
    return [t.get_text().replace("\N{MINUS SIGN}", "-") for t in widget.axes.get_xticklabels()]


def _controls(container) -> list:
    """Every control of a magicgui container, nested rows included (a file field is one)."""
    from magicgui.widgets import Container, FileEdit

    out = []
    for w in container:
        if isinstance(w, Container) and not isinstance(w, FileEdit):
            out += _controls(w)
        else:
            out.append(w)
    return out


def test_folder_run_off_the_gui_thread_plots_and_hands_over(
    qtbot, make_napari_viewer, reference_weights, tmp_path, spy
):
    from napari_gifnet.plugin._qt.fusion_widget import FusionWidget

    viewer = make_napari_viewer()
    fusion = FusionWidget(viewer)
    viewer.window.add_dock_widget(fusion, name="GIFNet fusion")
    widget = _widget(viewer, tmp_path)
    widget.pairs.value = str(_pairs(tmp_path))
    assert widget.run() is not None
    assert widget.running and not widget.run_button.enabled and widget.cancel_button.enabled
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    result = widget.last_result
    assert result is not None and result.steps == 3, widget.status.value
    # the training ran in the worker thread, never on the GUI thread
    assert spy["threads"] and threading.main_thread() not in spy["threads"]
    (config,) = spy["configs"]
    assert (config.max_steps, config.batch_size, config.crop, config.init) == (
        3,
        2,
        32,
        "published",
    )
    assert config.lr == pytest.approx(1e-4) and config.workers == 0 and not config.progress
    # the live plot got every logged value, in order
    totals = [r["total"] for r in result.rows]
    assert [r["total"] for r in widget.losses] == totals
    np.testing.assert_array_equal(widget.loss_lines["total"].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(widget.loss_lines["total"].get_ydata(), totals)
    np.testing.assert_allclose(
        widget.loss_lines["s2_total"].get_ydata(), [r["s2_total"] for r in result.rows]
    )
    assert [float(r["total"]) for r in _log_rows(result.log)] == pytest.approx(totals)
    # labelled axes, whole steps only, the hint gone
    assert (widget.axes.get_xlabel(), widget.axes.get_ylabel()) == ("step", "loss")
    ticks = _step_ticks(widget)
    assert ticks and all(t.lstrip("-").isdigit() for t in ticks), ticks
    assert not widget.hint.get_visible()
    # the random-DenseNet advice names the widget's control, not the command's flag
    advice = [str(n.message) for n in notification_manager.records if "DenseNet" in str(n.message)]
    assert advice and '"DenseNet-121 weights"' in advice[-1], advice
    assert "--densenet-weights" not in " ".join(advice)
    # the checkpoint is handed to the docked fusion widget, and it fuses
    out = tmp_path / "run" / "tuned.pth"
    assert result.checkpoint == out and out.is_file()
    assert widget.handed_to is fusion and Path(str(fusion.weights.value)) == out
    assert "GIFNet fusion widget's weights" in widget.status.value
    meta = json.loads(result.metadata.read_text())
    assert meta["initial_weights"]["init"] == "published" and meta["steps_done"] == 3
    _fuses(out)
    # "start from the fusion widget's weights": the checkpoint just made
    widget.init.value = "fusion"
    widget.out.value = str(tmp_path / "run" / "again.pth")
    widget.steps.value = 1
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    assert spy["configs"][-1].init == str(out)
    assert Path(str(fusion.weights.value)) == tmp_path / "run" / "again.pth"


def test_cancel_after_the_first_step_keeps_its_checkpoint(
    qtbot, make_napari_viewer, reference_weights, gifnet_plugin, tmp_path, spy
):
    from napari_gifnet.plugin._qt.finetune_widget import find_fusion_widget

    viewer = make_napari_viewer()
    widget = _widget(viewer, tmp_path, steps=3)
    widget.pairs.value = str(_pairs(tmp_path))
    spy["gate"], spy["gate_at"] = threading.Event(), 1
    assert widget.run() is not None
    qtbot.waitUntil(lambda: len(widget.losses) == 1, timeout=DONE_MS)
    widget.cancel()
    spy["gate"].set()
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    out = tmp_path / "run" / "tuned.pth"
    assert widget.status.value.startswith("Cancelled after step 1 of 3"), widget.status.value
    assert str(out) in widget.status.value
    assert widget.last_result is None and len(widget.losses) == 1
    # the checkpoint of step 1, with its log and metadata (as Ctrl-C writes them)
    assert out.is_file()
    assert [int(r["step"]) for r in _log_rows(out.with_suffix(".log.csv"))] == [1]
    assert json.loads(out.with_suffix(".train.json").read_text())["steps_done"] == 1
    _fuses(out)
    # nothing was handed over; the button does it (opening GIFNet fusion)
    assert find_fusion_widget(viewer) is None
    widget.use_button.changed.emit(True)
    fusion = find_fusion_widget(viewer)
    assert fusion is not None and Path(str(fusion.weights.value)) == out


def test_form_fits_beside_fusion_explains_itself_and_plots_whole_steps(
    qtbot, make_napari_viewer, tmp_path
):
    from napari_gifnet.plugin._qt.finetune_widget import FinetuneWidget
    from napari_gifnet.plugin._qt.fusion_widget import FusionWidget

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1280, 1000)
    widget = FinetuneWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fine-tune GIFNet")
    fusion = FusionWidget(viewer)
    viewer.window.add_dock_widget(fusion, name="GIFNet fusion")
    # as after a fine-tune: its checkpoint in the weights (with its line and the way
    # back to the published weights) and a long preset reason
    checkpoint = tmp_path / "ct_mri_tuned.pth"
    checkpoint.write_bytes(b"a checkpoint")
    fusion.use_checkpoint(checkpoint)
    fusion.task.value = "medical"
    qtbot.wait(50)
    assert fusion.shared_weights.published.native.isVisible()
    # both docks fit a 1000-pixel-high window: it does not grow to hold them
    assert window.height() <= 1000, (window.height(), widget.native.minimumSizeHint())
    assert fusion.run_button.native.isVisible()
    assert widget.native.height() >= widget.native.minimumSizeHint().height()
    assert widget.canvas.height() >= 100 and widget.run_button.native.isVisible()
    # the advanced options fold away; the source shows only its own inputs
    assert not widget.more.visible and widget.pairs.visible and not widget.first.visible
    widget.advanced.value = True
    assert widget.more.visible and widget.densenet.visible
    widget.source.value = "layers"
    assert widget.first.visible and widget.second.visible and not widget.pairs.visible
    # every control says what it does
    controls = [*_controls(widget.form), *_controls(widget.buttons)]
    assert len(controls) >= 16
    assert [w.label or w.text for w in controls if not (w.tooltip or "").strip()] == []
    assert widget.canvas.toolTip()
    # an empty plot: labelled axes, whole steps (1 to the steps to train), a hint
    assert (widget.axes.get_xlabel(), widget.axes.get_ylabel()) == ("step", "loss")
    assert widget.hint.get_visible() and "Train" in widget.hint.get_text()
    widget.steps.value = 7
    ticks = _step_ticks(widget)
    assert ticks and all(t.lstrip("-").isdigit() for t in ticks), ticks
    assert widget.axes.get_xlim() == (1, 7)


def test_densenet_weights_control_is_used_and_remembered(qtbot, make_napari_viewer, tmp_path, spy):
    from napari_gifnet.plugin._qt.finetune_widget import DENSENET_ENV, FinetuneWidget
    from napari_gifnet.training.features import DENSENET_ENV as TRAINING_ENV

    assert DENSENET_ENV == TRAINING_ENV
    viewer = make_napari_viewer()
    widget = _widget(viewer, tmp_path, steps=1)
    widget.pairs.value = str(_pairs(tmp_path))
    widget.densenet.value = str(tmp_path / "missing.pth")
    assert widget.run() is None
    assert "DenseNet-121 weights file" in widget.status.value
    assert "missing.pth" in widget.status.value
    bad = tmp_path / "densenet.pth"
    bad.write_bytes(b"not weights")
    widget.densenet.value = str(bad)
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    assert spy["configs"][-1].densenet_weights == str(bad)
    assert "not a readable PyTorch weights file" in widget.status.value
    # remembered like the other options
    again = FinetuneWidget(viewer)
    assert Path(str(again.densenet.value)) == bad


def test_two_layers_become_a_temporary_pairs_folder(
    qtbot, make_napari_viewer, reference_weights, gifnet_plugin, tmp_path, spy
):
    from napari_gifnet.plugin._qt.finetune_widget import find_fusion_widget

    viewer = make_napari_viewer()
    ir, vis = synthetic_pair(48, np.random.default_rng(3))
    viewer.add_image(ir, name="IR")
    viewer.add_image(vis, name="VIS")
    widget = _widget(viewer, tmp_path, steps=2)
    widget.source.value = "layers"
    assert widget.first.value is viewer.layers["IR"] and widget.second.value is viewer.layers["VIS"]
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    result = widget.last_result
    assert result is not None and result.steps == 2, widget.status.value
    (config,) = spy["configs"]
    # one plane, written twice to fill a batch of 2 (two random crops), then removed
    assert spy["files"] == [["plane00000-1.tif", "plane00000.tif"]]
    assert not Path(config.pairs).exists()
    assert threading.main_thread() not in spy["threads"]
    # no fusion widget was docked: it is opened, with the new checkpoint
    fusion = find_fusion_widget(viewer)
    assert fusion is not None and widget.handed_to is fusion
    assert Path(str(fusion.weights.value)) == tmp_path / "run" / "tuned.pth"
    _fuses(result.checkpoint)


def test_refusals_say_why(qtbot, make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((48, 48), np.uint8), name="A")
    viewer.add_image(np.zeros((40, 48), np.uint8), name="B")
    viewer.add_image(np.zeros((48, 48), np.uint8), name="C")
    widget = _widget(viewer, tmp_path)

    def refused(text: str) -> None:
        count = len(notification_manager.records)
        assert widget.run() is None and not widget.running
        assert widget.status.value.startswith("Cannot fine-tune") and text in widget.status.value
        assert any(text in str(n.message) for n in notification_manager.records[count:])

    refused("choose a pairs folder")
    widget.source.value = "layers"
    widget.first.value, widget.second.value = viewer.layers["A"], viewer.layers["B"]
    refused("one size")
    widget.second.value = viewer.layers["C"]
    widget.crop.value = 64
    refused("smaller than the crop (64)")
    widget.out.line_edit.value = ""
    refused("choose the output checkpoint file")
    assert not widget.use_checkpoint()


def test_layer_pairs_fill_a_batch(tmp_path):
    from napari_gifnet.plugin._qt.finetune_widget import MIN_CROP, write_layer_pairs
    from napari_gifnet.training.dataset import MIN_CROP as DATASET_MIN_CROP
    from napari_gifnet.training.dataset import RGBJointDataset

    assert MIN_CROP == DATASET_MIN_CROP
    stack = np.random.default_rng(0).random((3, 40, 40))
    rgb = np.random.default_rng(1).integers(0, 255, (3, 40, 40, 4), dtype=np.uint8)
    assert write_layer_pairs(tmp_path / "a", stack, rgb, (3,), 2, (False, True)) == 3
    assert write_layer_pairs(tmp_path / "b", stack, rgb, (3,), 8, (False, True)) == 9
    dataset = RGBJointDataset(tmp_path / "b", crop=32)
    assert len(dataset) == 9
    dataset.check_images()  # float32 and RGB (alpha dropped) TIFFs both decode


def test_triton_is_kept_out_only_next_to_a_loaded_llvm(tmp_path, monkeypatch):
    import sys

    from napari_gifnet.plugin._qt.finetune_widget import keep_triton_out

    with_llvm, without = tmp_path / "maps-llvm", tmp_path / "maps"
    with_llvm.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libLLVM-15.so.1\n")
    without.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/libc.so.6\n")
    monkeypatch.setitem(sys.modules, "triton", object())
    assert not keep_triton_out(with_llvm)  # already loaded: nothing to do
    monkeypatch.delitem(sys.modules, "triton")
    assert not keep_triton_out(without) and "triton" not in sys.modules
    assert not keep_triton_out(tmp_path / "missing")
    assert keep_triton_out(with_llvm) and sys.modules["triton"] is None
    with pytest.raises(ImportError):
        import triton  # noqa: F401


def test_a_layer_with_nan_is_named_in_the_message(qtbot, make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    ir, vis = synthetic_pair(48, np.random.default_rng(3))
    ir = ir.astype(np.float32)
    ir[5, 7] = np.nan
    viewer.add_image(ir, name="IR with a hole")
    viewer.add_image(vis, name="VIS")
    widget = _widget(viewer, tmp_path, steps=1)
    widget.source.value = "layers"
    count = len(notification_manager.records)
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    text = widget.status.value
    assert text.startswith("Fine-tuning failed: layer 'IR with a hole' contains 1 NaN"), text
    assert "napari-gifnet-pairs-" not in text and ".tif" not in text
    assert any("'IR with a hole'" in str(n.message) for n in notification_manager.records[count:])
    assert widget.last_result is None and not (tmp_path / "run" / "tuned.pth").exists()


def test_layer_pairs_refuse_a_plane_with_nan_by_its_layers_name(tmp_path):
    from napari_gifnet.plugin._qt.finetune_widget import write_layer_pairs

    stack = np.random.default_rng(0).random((3, 40, 40)).astype(np.float32)
    other = stack.copy()
    other[2, 0, :4] = np.inf
    with pytest.raises(ValueError, match=r"layer 'B' \(plane \(2,\)\) contains 4 NaN or inf"):
        write_layer_pairs(tmp_path / "a", stack, other, (3,), names=("A", "B"))
    ints = np.zeros((40, 40), np.uint8)  # integers are always finite
    assert write_layer_pairs(tmp_path / "b", ints, ints, (), names=("A", "B")) == 1


def test_start_from_the_shared_weights_without_a_fusion_widget(make_napari_viewer, tmp_path):
    """"start from" the GIFNet widgets' weights reads the plugin-wide setting, docked
    fusion widget or not."""
    from napari_gifnet.plugin._qt._settings import store_weights
    from napari_gifnet.plugin._qt.finetune_widget import FinetuneWidget

    checkpoint = tmp_path / "earlier.pth"
    checkpoint.write_bytes(b"a checkpoint")
    store_weights(str(checkpoint))
    widget = FinetuneWidget(make_napari_viewer())
    assert widget.fusion_widget() is None
    widget.init.value = "fusion"
    assert widget._init() == str(checkpoint)
    widget.init.value = "published"
    assert widget._init() == "published"
