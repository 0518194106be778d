"""The job machinery every dock widget shares.

A widget is a form that builds a *work* function calling the console
function with a ``progress`` callback; a :class:`JobRunner` runs it in a
napari worker thread (Cancel, progress bar, warnings, the outcome in a
:class:`StatusLine`). :class:`JobWidget` is the base of the magicgui forms;
the runner and :class:`LayerWatcher` also serve a plain ``QWidget`` (the
metrics widget).
"""

from __future__ import annotations

import inspect
import os
import threading
import time
from collections.abc import Callable, Generator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton
from qtpy.QtCore import QEvent, QObject, Qt, Signal
from qtpy.QtWidgets import QLabel, QProgressBar, QSizePolicy

from ...util.progress import Cancelled, Progress
from . import _settings
from ._form import box, file_text, never_widen
from ._settings import WidgetSettings

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image
    from napari.qt.threading import GeneratorWorker

__all__ = [
    "JobProgressBar", "JobRunner", "JobWidget", "LayerWatcher", "Outcome", "SharedWeights",
    "StatusLine", "WEIGHTS_SEARCH", "device_text", "gifnet_controls", "image_layers",
    "progress_text", "weights_of", "weights_state",
]  # fmt: skip

#: What a job computes: ``work(progress) -> value``, or a generator returning it.
Work = Callable[[Progress], Any]
CANCELLED = "Cancelled; no layer was added."
_WEIGHT_FILTER = "Checkpoints (*.pth *.pt *.model *.ckpt);;All files (*)"


@dataclass
class Outcome:
    """How a job ended: its value, its error, or cancelled."""

    value: Any = None
    error: BaseException | None = None
    cancelled: bool = False


class ProgressRelay(QObject):
    """Carries ``(done, total)`` from a worker thread to the GUI thread."""

    progressed = Signal(int, int)


def _body(work: Work, progress: Progress) -> Generator[Any, None, Outcome]:
    """Worker body: ``work(progress)``, every exception returned as an :class:`Outcome`.

    Always a generator (napari then makes a generator worker, which can stop
    between yields); napari's workers would mistake a ``RuntimeError`` (e.g.
    missing weights) for a deleted worker and drop it, hence nothing is raised.
    """
    try:
        value = work(progress)
        if inspect.isgenerator(value):
            value = yield from value
    except Cancelled:
        return Outcome(cancelled=True)
    except Exception as exc:  # noqa: BLE001 - shown to the user as a notification
        return Outcome(error=exc)
    return Outcome(value=value)


def _as_given(message: str, _category: type) -> str:
    return message


def _failed(exc: BaseException) -> str:
    return f"Failed: {exc}"


def device_text(device: str | None) -> str:
    """The device a job runs on, in words: ``"the CPU"``, ``"the GPU (NVIDIA H100)"``.

    Parameters
    ----------
    device
        The device control's value; ``"auto"`` is resolved to the device it
        picks on this machine (:func:`napari_gifnet.engine.devices.resolve_device`).

    Returns
    -------
    str
        The words for the status line; the name as given when it is not a
        device of this machine (the job then fails with the reason).
    """
    from ...engine.devices import resolve_device

    try:
        resolved = resolve_device(device)
    except ValueError:
        return str(device)
    if resolved.type == "cpu":
        return "the CPU"
    if resolved.type == "cuda":
        import torch

        return f"the GPU ({torch.cuda.get_device_name(resolved.index or 0)})"
    if resolved.type == "mps":
        return "the Apple GPU (MPS)"
    return str(resolved)


def progress_text(done: int, total: int, elapsed: float | None) -> str:
    """The progress bar's text: ``"3 / 10, about 12 s left"``.

    Parameters
    ----------
    done, total
        Tiles, planes or bands done and in all.
    elapsed
        Seconds since the first progress report, None before it.

    Returns
    -------
    str
        ``"done / total"``, with the time left estimated from the rate so far
        once some work is done (in seconds, or minutes from 100 s on).
    """
    text = f"{done} / {total}"
    if elapsed is None or done <= 0 or total <= done:
        return text
    left = elapsed / done * (total - done)
    when = f"{round(left)} s" if left < 100 else f"{round(left / 60)} min"
    return f"{text}, about {when} left"


class StatusLine(QObject):
    """Keeps a status label to one line that never widens its dock.

    The label shows the message on one line (its lines joined), elided to the
    label's width (again when it is resized); the tooltip holds the whole
    message whenever the label shows it otherwise. A :class:`QLabel` or a
    magicgui ``Label``.
    """

    def __init__(self, label: Any) -> None:
        self.label: QLabel = label if isinstance(label, QLabel) else label.native
        super().__init__(self.label)
        self.label.setWordWrap(False)
        never_widen(self.label)
        self.full = self.label.text()
        self._shown = self.full
        self.label.installEventFilter(self)

    def show(self, text: str) -> None:
        """Show ``text`` on one line, elided; the tooltip holds all of it."""
        self.full = text.strip()
        self._render()

    def _render(self) -> None:
        shown = " ".join(line.strip() for line in self.full.splitlines() if line.strip())
        width = self.label.contentsRect().width()
        if self.label.isVisible() and width > 0:
            metrics = self.label.fontMetrics()
            shown = metrics.elidedText(shown, Qt.TextElideMode.ElideRight, width)
        self._shown = shown
        self.label.setText(shown)
        self.label.setToolTip(self.full if shown != self.full else "")

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        """Re-elide on resize, unless someone else has set the label's text since."""
        resized = event.type() in (QEvent.Type.Resize, QEvent.Type.Show)
        if resized and self.label.text() == self._shown:
            self._render()
        return False


class JobProgressBar(QProgressBar):
    """A job's progress, "3 / 10, about 12 s left"; hidden when no job runs."""

    def __init__(self) -> None:
        super().__init__()
        self._first: tuple[float, int] | None = None  # (time, done) of the first report
        self.setTextVisible(True)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setToolTip("Tiles, planes or bands done, and the time left at the rate so far")
        self.hide()

    def begin(self) -> None:
        """A job starts: a busy bar until its first report."""
        self._first = None
        self.setRange(0, 0)
        self.setFormat("starting ...")
        if self.parent() is not None:  # placed in a layout
            self.show()

    def advance(self, done: int, total: int) -> None:
        """The job reports ``done`` of ``total``."""
        now = time.monotonic()
        if self._first is None or done < self._first[1]:
            self._first = (now, done)
        start, done0 = self._first
        elapsed = (now - start) * done / (done - done0) if done > done0 else None
        self.setRange(0, max(total, 0))
        self.setValue(min(max(done, 0), max(total, 0)))
        self.setFormat(progress_text(done, total, elapsed))

    def end(self) -> None:
        """The job is over: hide the bar."""
        self._first = None
        self.hide()


def _enable(button: Any, enabled: bool) -> None:
    if button is None:
        return
    if hasattr(button, "setEnabled"):  # a QPushButton
        button.setEnabled(enabled)
    else:  # a magicgui PushButton
        button.enabled = enabled


def on_destroyed(native: QObject, callback: Callable[[], None]) -> None:
    """Call ``callback`` when the Qt widget ``native`` is destroyed.

    Through a closure: a bound method of a dying QObject would be disconnected
    before the signal reaches it.
    """
    native.destroyed.connect(lambda *_: callback())


class JobRunner:
    """Runs a widget's jobs, one at a time, in a napari worker thread.

    Parameters
    ----------
    parent
        The widget's Qt widget (the progress relay's parent; when it is
        destroyed, :meth:`close` is called).
    status
        The status line (a magicgui ``Label`` or a ``QLabel``); the runner
        keeps it to one line (:class:`StatusLine`).
    run_button, cancel_button
        Disabled / enabled while a job runs (magicgui or Qt buttons).
    cancelled
        The status line after a cancelled job.

    The widget places ``bar``, the job's :class:`JobProgressBar`.
    """

    def __init__(
        self,
        parent: QObject,
        *,
        status: Any,
        run_button: Any,
        cancel_button: Any = None,
        cancelled: str = CANCELLED,
    ) -> None:
        self.status_line = StatusLine(status)
        #: The buttons disabled while a job runs (Run; *Compare methods* adds its own).
        self.run_buttons, self.cancel_button = [run_button], cancel_button
        self.bar = JobProgressBar()
        self.cancelled_text = cancelled
        #: ``warning_text(message, category)``: a job's warning as the notification says it
        #: (a widget may reword advice meant for the command line).
        self.warning_text: Callable[[str, type], str] = _as_given
        self.progress_bar: Any = None
        self.worker: GeneratorWorker | None = None
        self.alive = True
        self._cancel = threading.Event()
        self._outcome: Outcome | None = None
        self._job: Generator[Any, None, Outcome] | None = None
        self._done: Callable[[Any], str] = str
        self._describe: Callable[[BaseException], str] = _failed
        self._relay = ProgressRelay(parent)
        self._relay.progressed.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        on_destroyed(parent, self.close)

    @property
    def running(self) -> bool:
        """Whether a job is running."""
        return self.worker is not None

    def start(
        self,
        work: Work,
        label: str,
        *,
        done: Callable[[Any], str],
        describe: Callable[[BaseException], str] = _failed,
        running: str | None = None,
    ) -> GeneratorWorker | None:
        """Run ``work(progress)`` in a worker thread; returns the worker (None if busy).

        ``label`` names the progress bar; ``running`` is the status line
        meanwhile (default ``"Running: <label> ..."``). On success ``done(value)``
        runs on the GUI thread and returns the status line; on failure
        ``describe(error)`` is the notification's message.
        """
        from napari.qt.threading import create_worker
        from napari.utils import progress

        if self.running:
            return None
        self._cancel = cancel = threading.Event()
        self._outcome = None
        self._done, self._describe = done, describe
        emit = self._relay.progressed.emit

        def report(done: int, total: int) -> None:
            if cancel.is_set():
                raise Cancelled("cancelled")
            emit(done, total)

        self.progress_bar = progress(total=0, desc=label)
        self.bar.begin()
        # our own handle on the job's generator: a worker stopped between
        # yields leaves it suspended, and closing it when the worker
        # finishes runs its cleanup (``finally``, ``with`` blocks) now
        self._job = job = _body(work, report)

        def body() -> Generator[Any, None, Outcome]:
            return (yield from job)

        worker = create_worker(body, _ignore_errors=True)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(lambda exc: self._on_returned(Outcome(error=exc)))
        worker.warned.connect(self._on_warned)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._set_running(True, running or f"Running: {label} ...")
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running job at its next progress call or yield; it adds nothing."""
        if self.worker is not None:
            self._cancel.set()
            self.worker.quit()
            self.status_line.show("Cancelling ...")

    def close(self) -> None:
        """The widget is gone: cancel any job and update no more of the GUI."""
        self.alive = False
        self._cancel.set()

    def fail(self, message: str) -> None:
        """Show ``message`` in the status line and as an error notification."""
        from napari.utils.notifications import show_error

        self.status_line.show(message)
        show_error(message)

    def _set_running(self, running: bool, text: str) -> None:
        for button in self.run_buttons:
            _enable(button, not running)
        _enable(self.cancel_button, running)
        self.status_line.show(text)

    def _on_progress(self, done: int, total: int) -> None:
        if self.progress_bar is not None and self.running:
            if self.progress_bar.total != total:
                self.progress_bar.total = total
            self.progress_bar.update(done - self.progress_bar.n)
            self.bar.advance(done, total)

    def _on_warned(self, args: tuple) -> None:
        """Show the job's user warnings (e.g. an ignored alpha channel), in the words of
        :attr:`warning_text`."""
        from napari.utils.notifications import show_warning

        if isinstance(args[1], type) and issubclass(args[1], UserWarning):
            show_warning(f"GIFNet: {self.warning_text(str(args[0]), args[1])}")

    def _on_returned(self, outcome: Outcome) -> None:
        if self._outcome is None:
            self._outcome = outcome

    def _on_finished(self) -> None:
        if self._job is not None:
            self._job.close()  # a no-op unless the worker stopped between yields
            self._job = None
        outcome = self._outcome or Outcome(cancelled=True)  # stopped between yields
        if self.progress_bar is not None:
            self.progress_bar.close()
            self.progress_bar = None
        self.worker = None
        if not self.alive:  # the widget was closed while the job ran
            return
        self.bar.end()
        self._set_running(False, "Ready.")
        if outcome.cancelled or self._cancel.is_set():
            self.status_line.show(self.cancelled_text)
        elif outcome.error is not None:
            self.fail(self._describe(outcome.error))
        else:
            try:
                text = self._done(outcome.value)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                self.fail(f"Could not add the result layers: {exc}")
                return
            self.status_line.show(text)


def image_layers(viewer: napari.Viewer) -> list[Image]:
    """The viewer's image layers, in layer-list order."""
    from napari.layers import Image

    return [ly for ly in viewer.layers if isinstance(ly, Image)]


class LayerWatcher:
    """Calls ``refresh()`` when layers are added, removed, moved or renamed.

    Disconnects from the viewer when ``native`` (the widget) is destroyed.
    """

    def __init__(self, viewer: napari.Viewer, refresh: Callable[[], None], native: QObject):
        self.viewer, self._refresh = viewer, refresh
        self._watched: set[Any] = set()
        self.alive = True
        for sig in self._list_events():
            sig.connect(self.changed)
        self._watch()
        on_destroyed(native, self.close)

    def _list_events(self) -> tuple[Any, ...]:
        events = self.viewer.layers.events
        return events.inserted, events.removed, events.moved, events.reordered

    def _watch(self) -> None:
        current = set(self.viewer.layers)
        for layer in current - self._watched:
            layer.events.name.connect(self.changed)
        for layer in self._watched - current:
            layer.events.name.disconnect(self.changed)
        self._watched = current

    def changed(self, _event: Any = None) -> None:
        if self.alive:
            self._watch()
            self._refresh()

    def close(self) -> None:
        self.alive = False
        for sig in self._list_events():
            sig.disconnect(self.changed)
        for layer in self._watched:
            layer.events.name.disconnect(self.changed)
        self._watched = set()


#: The weights search, in one line (:func:`napari_gifnet.model.weights.resolve_weights`).
WEIGHTS_SEARCH = (
    "Weights search: this field, else the file named by GIFNET_WEIGHTS, else the cache "
    "(gifnet-official.pth, sha256 checked), else a download of the published checkpoint."
)
_WEIGHTS_TIP = (
    "GIFNet checkpoint file (.pth) for every GIFNet widget: one setting shared by all of "
    "them and remembered for the next launch. Leave it empty for the published weights; "
    "choose a fine-tuned or local file to use it instead. " + WEIGHTS_SEARCH
)
_DEVICE_TIP = (
    "Where GIFNet runs: auto picks the GPU when there is one (CUDA or Apple MPS), else the "
    "CPU. Choose cpu when the GPU runs out of memory or is busy; cuda:N for one GPU of several."
)
_PUBLISHED_TIP = "Forget the chosen checkpoint: every GIFNet widget uses the published weights"


def weights_state(path: str | None, remembered: bool = False) -> tuple[str, bool]:
    """The weights line of a widget, and whether the weights are other than the published ones.

    Parameters
    ----------
    path
        The weights field ("" or None: the search, which reads ``GIFNET_WEIGHTS``).
    remembered
        Whether the field's file was restored from an earlier session.

    Returns
    -------
    str
        ``"Weights: run.pth (not the published checkpoint; remembered from an earlier
        session)"``, ``"Weights: published (...)"``, ...
    bool
        True for a file other than the published checkpoint.
    """
    from ...model.weights import OFFICIAL_SHA256, WEIGHTS_ENV, file_sha256

    path = str(path or "").strip()
    where = "this field"
    if not path:
        path = os.environ.get(WEIGHTS_ENV, "").strip()
        if not path:
            return "Weights: the published checkpoint (cache or download)", False
        where = WEIGHTS_ENV
    file = Path(path).expanduser()
    if not file.is_file():
        return f"Weights: {file.name} (file not found; from {where})", True
    try:
        published = file_sha256(file) == OFFICIAL_SHA256
    except OSError:
        published = False
    if published:
        return f"Weights: {file.name} (the published checkpoint; from {where})", False
    since = "remembered from an earlier session" if remembered else f"from {where}"
    return f"Weights: {file.name} (not the published checkpoint; {since})", True


class SharedWeights:
    """Keeps a widget's weights field equal to the plugin-wide weights setting.

    The field starts at the stored setting (:func:`._settings.stored_weights`);
    a change of the field stores it and sets it in every other open widget
    (:func:`._settings.store_weights`); ``note`` says which weights a run
    uses and ``published`` (shown for any other file) puts the published
    weights back everywhere.
    """

    def __init__(self, widget: Any) -> None:
        self.widget = widget
        self.field: FileEdit = widget.weights
        self.note = Label(label="", value="")
        self.note.native.setWordWrap(True)
        never_widen(self.note.native)  # a long name never widens the dock
        self.published = PushButton(text="Use the published weights")
        self.published.tooltip = _PUBLISHED_TIP
        self.published.native.setVisible(False)
        self._quiet = True
        stored = _settings.stored_weights()
        if stored:
            self.field.value = stored
        self._quiet = False
        self.remembered = bool(stored) and not _settings.weights_chosen_now(stored)
        self.field.changed.connect(self._changed)
        self.published.changed.connect(self.use_published)
        hub = _settings.weights_hub()
        hub.changed.connect(self._shared)
        on_destroyed(widget.native, lambda: _disconnect(hub, self._shared))
        self._show()

    def _changed(self, _value: Any = None) -> None:
        """The user (or code) changed this widget's field: share it."""
        if not self._quiet:
            _settings.store_weights(weights_of(self.widget) or "")

    def _shared(self, path: str) -> None:
        """The shared setting changed (in this or another widget)."""
        self.remembered = False
        if (weights_of(self.widget) or "") != path:
            self._quiet = True
            try:
                _settings.set_value(self.field, path)
            finally:
                self._quiet = False
        self._show()

    def use_published(self, _value: Any = None) -> None:
        """The published weights in every widget (the field emptied)."""
        _settings.store_weights("")

    def _show(self) -> None:
        path = weights_of(self.widget)
        self.text, self.custom = weights_state(path, self.remembered)
        self.note.value = self.text
        self.note.tooltip = "\n".join(t for t in (self.text, path, WEIGHTS_SEARCH) if t)
        if self.published.native.parent() is not None:  # placed: never a window of its own
            self.published.native.setVisible(self.custom and bool(weights_of(self.widget)))

    def place(self, container: Container) -> None:
        """Put the weights line and the button below the weights field in ``container``."""
        try:
            index = list(container).index(self.field)
        except ValueError:
            return
        container.insert(index + 1, self.note)
        container.insert(index + 2, self.published)
        self._show()


def _disconnect(hub: Any, slot: Callable[..., Any]) -> None:
    with suppress(TypeError, RuntimeError):  # not connected, or the hub is gone already
        hub.changed.disconnect(slot)


def gifnet_controls(widget: Any) -> None:
    """Add the GIFNet-only ``device`` and ``weights`` controls to ``widget``.

    The weights field shows the plugin-wide weights setting
    (:class:`SharedWeights`, ``widget.shared_weights``); :meth:`JobWidget.remember`
    puts its weights line and *Use the published weights* button below it.
    """
    from ...engine.devices import available_devices

    widget.device = ComboBox(label="device", choices=["auto", *available_devices()])
    widget.device.tooltip = _DEVICE_TIP
    widget.weights = FileEdit(label="weights", mode="r", filter=_WEIGHT_FILTER)
    widget.weights.tooltip = _WEIGHTS_TIP
    placeholder = "published (GIFNET_WEIGHTS, cache, download)"
    widget.weights.line_edit.native.setPlaceholderText(placeholder)
    widget.weights.line_edit.tooltip = _WEIGHTS_TIP
    widget.weights.choose_btn.tooltip = "Choose a GIFNet checkpoint file"
    widget.shared_weights = SharedWeights(widget)


def weights_of(widget: Any) -> str | None:
    """The ``weights`` control's file, None when empty (the default search)."""
    return file_text(widget.weights) or None


class JobWidget(Container):
    """Base of the magicgui job forms: image-layer pickers, Run / Cancel, status.

    ``buttons`` holds the Run / Cancel / Reset row and, below it, the runner's
    progress bar (shown while a job runs).

    A subclass builds its controls, lists its pickers in ``_pickers`` (the
    second and later ones default to a layer other than the first's) and
    implements :meth:`prepare` (GUI thread: check the form, read no pixels,
    return the work and its label, or raise ``ValueError`` / ``TypeError`` to
    refuse) and :meth:`finish` (GUI thread: put the result layers);
    :meth:`summary`, :meth:`describe` and :meth:`running_text` word the
    status line. It names the controls remembered across launches with
    :meth:`remember` (:mod:`._settings`); the Reset button restores their
    defaults.
    """

    #: Prefix of the message when :meth:`prepare` refuses the form.
    refusal = "Cannot run"

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.reset_button = PushButton(text="Reset")
        self.reset_button.tooltip = "Restore the default settings (and forget the stored ones)"
        row = box([self.run_button, self.cancel_button, self.reset_button])
        self.buttons = box([row], layout="vertical")
        self.status = Label(label="", value="Ready.")
        self.last_layers: list[Any] = []
        self.last_result: Any = None
        self._pickers: list[ComboBox] = []
        self.runner = JobRunner(
            self.native, status=self.status, run_button=self.run_button,
            cancel_button=self.cancel_button,
        )  # fmt: skip
        self.buttons.native.layout().addWidget(self.runner.bar)
        self.settings: WidgetSettings | None = None
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.reset_button.changed.connect(self.reset_settings)
        self.layer_watcher = LayerWatcher(self.viewer, self._refresh_layers, self.native)

    # ----------------------------------------------------------- layer pickers
    def _image_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [(ly.name, ly) for ly in image_layers(self.viewer)]

    def _refresh_layers(self) -> None:
        """Re-list the image layers in every picker; later pickers avoid the first's."""
        for picker in self._pickers:
            picker.reset_choices()
        images = image_layers(self.viewer)
        if not self._pickers or not images:
            return
        first, *others = self._pickers
        if first.value is None:
            first.value = images[0]
        for picker in others:
            if len(images) > 1 and picker.value in (None, first.value):
                picker.value = next(ly for ly in images if ly != first.value)

    # -------------------------------------------------------------- settings
    def remember(self, group: str, *names: str) -> dict[str, Any]:
        """Remember the controls ``names`` in the settings group ``group``.

        Called at the end of a subclass's ``__init__``: their current values
        are the defaults; the stored values are restored now (in this order)
        and every change is stored. Returns the restored values. ``"weights"``
        is the plugin-wide setting (:class:`SharedWeights`), not the group's;
        its line and button are placed below the field here.
        """
        shared = getattr(self, "shared_weights", None)
        if shared is not None:  # the plugin-wide setting, not the widget's own
            shared.place(self)
            names = tuple(name for name in names if name != "weights")
            self.reset_button.tooltip += "; the weights go back to the published ones everywhere"
        self.settings = WidgetSettings(group, {name: getattr(self, name) for name in names})
        return self.settings.restore()

    def reset_settings(self) -> None:
        """The Reset button: the remembered controls back to their defaults, nothing
        stored; the shared weights back to the published ones."""
        if self.settings is not None:
            self.settings.reset()
        shared = getattr(self, "shared_weights", None)
        if shared is not None and weights_of(self):
            shared.use_published()

    # ------------------------------------------------------------------ runs
    @property
    def running(self) -> bool:
        """Whether a job is running."""
        return self.runner.running

    @property
    def progress_bar(self) -> Any:
        """The running job's napari progress bar (None when idle)."""
        return self.runner.progress_bar

    def prepare(self) -> tuple[Work, str] | None:
        """The work and its label (GUI thread); None after :meth:`fail`."""
        raise NotImplementedError

    def finish(self, value: Any) -> list[Any]:
        """Put the result layers (GUI thread); returns them."""
        raise NotImplementedError

    def summary(self, value: Any) -> str:
        return f"Done in {getattr(value, 'elapsed', 0.0):.1f} s."

    def describe(self, exc: BaseException) -> str:
        """The one-line message of a failed job."""
        return _failed(exc)

    def running_text(self, label: str) -> str:
        """The status line while the job runs; names the device where GIFNet runs."""
        device = getattr(self, "device", None)
        where = f" on {device_text(device.value)}" if device is not None and device.enabled else ""
        return f"Running: {label}{where} ..."

    def run(self) -> GeneratorWorker | None:
        """Start the job in a worker thread; returns the worker (None if refused)."""
        if self.running:
            return None
        try:
            prepared = self.prepare()
        except (TypeError, ValueError) as exc:
            self.fail(f"{self.refusal}: {exc}")
            return None
        if prepared is None:
            return None
        work, label = prepared
        return self.runner.start(
            work, label, done=self._done, describe=self.describe, running=self.running_text(label)
        )

    def cancel(self) -> None:
        """Stop the running job at the next plane or band; adds no layer."""
        self.runner.cancel()

    def fail(self, message: str) -> None:
        self.runner.fail(message)

    def _done(self, value: Any) -> str:
        self.last_layers = self.finish(value)
        self.last_result = value
        return self.summary(value)
