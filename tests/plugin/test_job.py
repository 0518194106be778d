"""Every dock widget runs its job through the one :class:`JobRunner` (``_qt/_job.py``).

The console function behind each widget is replaced by a fake, so these tests
need no weights and take a second each: Cancel must reach the fake as the
package's one :class:`napari_gifnet.util.progress.Cancelled` raised in its
progress callback, and a failing job must give exactly one error
notification with its message. A widget with its own worker or cancel
plumbing would bypass the runner's ``start`` / ``cancel`` and fail here.
"""

from __future__ import annotations

import importlib
import threading
import time

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.utils.notifications import NotificationSeverity, notification_manager

from napari_gifnet.util.progress import Cancelled

DONE_MS = 30_000
N = 16


def _viewer(make_napari_viewer):
    rng = np.random.default_rng(0)
    viewer = make_napari_viewer()
    viewer.add_image(rng.random((N, N), np.float32), name="A")
    viewer.add_image(rng.random((N, N), np.float32), name="B")
    viewer.add_image(rng.random((3, N, N), np.float32), name="stack")
    viewer.add_image(rng.random((4, N, N), np.float32), name="MS", rgb=False)
    viewer.add_image(rng.random((N, N), np.float32), name="fused")
    return viewer


def _fusion(viewer, monkeypatch, fake):
    import napari_gifnet.plugin._qt.fusion_widget as fw

    def fake_iter(plan, *, progress, **_options):  # a generator, like iter_fusion
        yield 0, 1
        return fake(progress)

    monkeypatch.setattr(fw, "iter_fusion", fake_iter)
    widget = fw.FusionWidget(viewer)
    widget.first.value, widget.second.value = viewer.layers["A"], viewer.layers["B"]
    return widget


#: magicgui forms over a console function: widget, the function it calls, picker -> layer
FORMS = {
    "stack": ("stack_widget.StackWidget", "focus_stack.fuse_stack", {"layer": "stack"}),
    "pansharpen": ("pansharpen_widget.PansharpenWidget", "pansharpening.pansharpen",
                   {"ms": "MS", "pan": "A"}),
    "enhance": ("enhance_widget.EnhanceWidget", "enhancement.enhance", {"image": "A"}),
}  # fmt: skip


def _form(kind: str):
    def make(viewer, monkeypatch, fake):
        widget_name, function, pickers = FORMS[kind]
        module, cls = widget_name.split(".")
        fake_function = lambda *_a, progress, **_k: fake(progress)  # noqa: E731
        monkeypatch.setattr(f"napari_gifnet.workflows.{function}", fake_function)
        widget_module = importlib.import_module(f"napari_gifnet.plugin._qt.{module}")
        widget = getattr(widget_module, cls)(viewer)
        for picker, layer in pickers.items():
            getattr(widget, picker).value = viewer.layers[layer]
        return widget

    return make


def _metrics(viewer, monkeypatch, fake):
    import napari_gifnet.plugin._qt.metrics_widget as mw
    from napari_gifnet.plugin.layer_metrics import MetricsOutcome

    def fake_job(*_sources):  # metrics_job returns its errors, never raises them
        try:
            fake(lambda done, total: None)
        except Exception as exc:  # noqa: BLE001
            return MetricsOutcome(error=exc)
        return MetricsOutcome()

    monkeypatch.setattr(mw, "metrics_job", fake_job)
    widget = mw.MetricsWidget(viewer)
    widget.set_inputs("A", "B", ["fused"])  # an input is not offered as a fused layer
    return widget


CANCELLABLE = {"fusion": _fusion, **{kind: _form(kind) for kind in FORMS}}
WIDGETS = {**CANCELLABLE, "metrics": _metrics}


@pytest.fixture
def runner_calls(monkeypatch):
    """The runners whose ``start`` / ``cancel`` were called, in order."""
    from napari_gifnet.plugin._qt._job import JobRunner

    calls: list[tuple[str, object]] = []
    for name in ("start", "cancel"):
        real = getattr(JobRunner, name)

        def spy(self, *args, _real=real, _name=name, **kwargs):
            calls.append((_name, self))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(JobRunner, name, spy)
    return calls


def _start(widget):
    return widget.compute() if hasattr(widget, "compute") else widget.run()


@pytest.mark.parametrize("kind", list(CANCELLABLE))
def test_cancel_goes_through_the_runner_and_raises_cancelled(
    qtbot, make_napari_viewer, monkeypatch, runner_calls, kind
):
    viewer = _viewer(make_napari_viewer)
    started, raised = threading.Event(), []

    def fake(progress):
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                progress(1, 10)
                started.set()
                time.sleep(0.01)
        except BaseException as exc:
            raised.append(exc)
            raise
        raise AssertionError("Cancel never reached the progress callback")

    widget = CANCELLABLE[kind](viewer, monkeypatch, fake)
    viewer.window.add_dock_widget(widget, name=kind)
    n_layers = len(viewer.layers)
    assert _start(widget) is not None and widget.running
    qtbot.waitUntil(started.is_set, timeout=DONE_MS)
    widget.cancel_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    assert runner_calls == [("start", widget.runner), ("cancel", widget.runner)]
    assert len(raised) == 1 and type(raised[0]) is Cancelled
    assert widget.status.value == "Cancelled; no layer was added."
    assert len(viewer.layers) == n_layers and widget.progress_bar is None
    assert widget.run_button.enabled and not widget.cancel_button.enabled


@pytest.mark.parametrize("kind", list(WIDGETS))
def test_a_failing_job_gives_one_notification(
    qtbot, make_napari_viewer, monkeypatch, runner_calls, kind
):
    viewer = _viewer(make_napari_viewer)

    def fake(progress):
        progress(1, 2)
        # a RuntimeError: napari's workers would take it for a deleted worker
        raise RuntimeError("boom: the job failed")

    widget = WIDGETS[kind](viewer, monkeypatch, fake)
    viewer.window.add_dock_widget(widget, name=kind)
    n_layers = len(viewer.layers)
    count = len(notification_manager.records)
    assert _start(widget) is not None
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    assert runner_calls == [("start", widget.runner)]
    errors = [str(n.message) for n in notification_manager.records[count:]
              if n.severity == NotificationSeverity.ERROR]  # fmt: skip
    assert len(errors) == 1 and "boom: the job failed" in errors[0], errors
    status = widget.status.text() if kind == "metrics" else widget.status.value
    assert status == errors[0]
    assert len(viewer.layers) == n_layers and widget.runner.progress_bar is None
    assert not widget.running


def test_a_job_stopped_between_yields_is_closed_when_its_worker_finishes(
    qtbot, make_napari_viewer, monkeypatch
):
    """A generator job (iter_fusion holds the heap across its yields) runs its
    cleanup when Cancel stops it between yields, not whenever it is collected."""
    import napari_gifnet.plugin._qt.fusion_widget as fw

    viewer = _viewer(make_napari_viewer)
    yielding, events = threading.Event(), []

    def fake_iter(plan, *, progress, **_options):
        events.append("entered")
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # never calls progress: stops at a yield
                yielding.set()
                yield 0, 1
                time.sleep(0.01)
        finally:
            events.append("cleaned up")
        raise AssertionError("the worker never stopped")

    monkeypatch.setattr(fw, "iter_fusion", fake_iter)
    widget = fw.FusionWidget(viewer)
    widget.first.value, widget.second.value = viewer.layers["A"], viewer.layers["B"]
    keep = []  # hold the worker, as a lingering reference would
    assert _start(widget) is not None
    keep.append(widget.runner.worker)
    qtbot.waitUntil(yielding.is_set, timeout=DONE_MS)
    widget.cancel_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    assert events == ["entered", "cleaned up"]
    assert widget.status.value == "Cancelled; no layer was added."


@pytest.mark.parametrize("kind", list(CANCELLABLE))
def test_every_widget_shows_its_progress_while_it_runs(
    qtbot, make_napari_viewer, monkeypatch, kind
):
    """The runner's progress bar, below the Run button: done / total while the job
    runs, hidden before and after."""
    viewer = _viewer(make_napari_viewer)
    reported, release = threading.Event(), threading.Event()

    def fake(progress):
        progress(2, 5)
        reported.set()
        release.wait(20)
        raise ValueError("the fake job ends here")

    widget = CANCELLABLE[kind](viewer, monkeypatch, fake)
    viewer.window.add_dock_widget(widget, name=kind)
    bar = widget.runner.bar
    assert bar.isHidden() and bar.parentWidget() is not None
    try:
        assert _start(widget) is not None
        qtbot.waitUntil(lambda: bar.value() == 2, timeout=DONE_MS)
        assert bar.maximum() == 5 and not bar.isHidden()
        assert bar.format().startswith("2 / 5")
    finally:
        release.set()
        qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    assert bar.isHidden()
