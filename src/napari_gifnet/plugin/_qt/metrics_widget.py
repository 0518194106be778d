"""The "Fusion metrics" dock widget.

Pick the two inputs and one or more fused image layers, press Compute: the
reference-free metrics of :func:`napari_gifnet.metrics.fusion.fusion_metrics`
are computed in the widget's worker (:mod:`._job`) on the plane the viewer
shows (:func:`~napari_gifnet.plugin.layer_metrics.displayed_plane`) and shown
in a table, one row per metric and one column per fused layer, the best value
of each row in bold; "Copy as CSV" copies it at full precision.
"""

from __future__ import annotations

import csv
import io
import math
from typing import TYPE_CHECKING

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...metrics.fusion import METRICS
from ...util.progress import Progress
from ..layer_metrics import MetricsOutcome, MetricsSource, displayed_plane, metrics_job
from ..layer_output import FEATURE_SUMMARY, FEATURES, is_fused_layer
from ._form import number_text
from ._job import JobRunner, LayerWatcher, image_layers

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.qt.threading import GeneratorWorker

__all__ = ["MetricsWidget"]

#: Role holding a cell's exact value (float) or a column's layer name.
VALUE_ROLE = Qt.ItemDataRole.UserRole
#: The narrowest column (pixels): a value ("0.1234") and a little of its layer's name.
MIN_COLUMN = 56
#: Rows of the fused-layer list shown without scrolling (the table gets the rest).
FUSED_ROWS = 5


def _is_feature_layer(metadata: object) -> bool:
    """Whether a layer's metadata marks it as a fusion's feature stack or summary."""
    if not isinstance(metadata, dict):
        return False
    return metadata.get("gifnet_layer") in (FEATURES, FEATURE_SUMMARY) or "feature" in metadata


def _is_result(metadata: object) -> bool:
    return is_fused_layer(metadata) or _is_feature_layer(metadata)


def skipped_text(skipped: dict[str, str]) -> str:
    """The layers that were not scored and why, one sentence each."""
    return " ".join(f"Skipped {name!r}: {why}." for name, why in skipped.items())


def _number_item(value: float, tooltip: str) -> QTableWidgetItem:
    """A read-only, right-aligned cell showing ``value`` (its exact value in ``VALUE_ROLE``)."""
    item = QTableWidgetItem(number_text(value))
    item.setData(VALUE_ROLE, float(value))
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    item.setToolTip(tooltip)
    return item


def metric_tooltip(name: str) -> str:
    """A metric's row tooltip: what it measures and which way is better."""
    direction, text = METRICS[name]
    return f"{name}: {text} ({direction} is better)"


def _plane_size(src: MetricsSource) -> str:
    """The height and width of a source's plane: ``"480 x 640"``."""
    shape = tuple(src.data.shape[len(src.index) :])
    if len(shape) == 3 and shape[-1] in (3, 4):
        shape = shape[:2]
    return f"{shape[-2]} x {shape[-1]}"


class _Failed(Exception):
    """:func:`metrics_job`'s returned error, raised so that the job runner reports it."""

    def __init__(self, outcome: MetricsOutcome) -> None:
        super().__init__(str(outcome.error))
        self.outcome = outcome


class MetricsWidget(QWidget):
    """Dock widget that compares fused image layers with reference-free metrics.

    Parameters
    ----------
    napari_viewer
        The viewer whose image layers are compared.

    Attributes
    ----------
    results : dict[str, dict[str, float]]
        Layer name -> metric name -> value, of the last successful Compute.
    last_outcome : MetricsOutcome or None
        The last finished computation (its ``thread_id`` tells where it ran).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.first = QComboBox()
        self.first.setToolTip(
            "The first input of the fusion (e.g. infrared, CT): the metrics that compare "
            "with the inputs (MI, SCD, VIF, Qabf, SSIM) use it; choose the layers you fused"
        )
        self.second = QComboBox()
        self.second.setToolTip(
            "The second input of the fusion (e.g. visible, MRI), of the first's size"
        )
        self.fused = QListWidget()
        self.fused.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        row = self.fused.fontMetrics().height() + 4
        self.fused.setMaximumHeight(FUSED_ROWS * row + 2 * self.fused.frameWidth())
        self.fused.setToolTip(
            "Fused layers to compare (click to select or deselect one or more); fused "
            "results are selected when they appear, inputs and feature layers are not listed"
        )
        self.compute_button = QPushButton("Compute")
        self.compute_button.setToolTip(
            "Score the selected fused layers (the plane shown, for stacks) in the background; "
            "press it again after a new fusion or a move along a stack"
        )
        self.copy_button = QPushButton("Copy as CSV")
        self.copy_button.setToolTip(
            "Put the table on the clipboard as CSV, one line per fused layer, at full "
            "precision (to paste into a spreadsheet)"
        )
        self.copy_button.setEnabled(False)
        self.table = QTableWidget(len(METRICS), 0)
        self.table.setToolTip(
            "One row per metric, one column per fused layer; the best of each row in bold "
            "(hover a metric's name for what it measures)"
        )
        self.table.setVerticalHeaderLabels(list(METRICS))
        for row, name in enumerate(METRICS):
            self.table.verticalHeaderItem(row).setToolTip(metric_tooltip(name))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(MIN_COLUMN)
        header.setTextElideMode(Qt.TextElideMode.ElideLeft)
        header.setSortIndicatorShown(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(False)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        self.runner = JobRunner(
            self, status=self.status, run_button=self.compute_button,
            cancelled="Cancelled; the table was not changed.",
        )  # fmt: skip

        form = QFormLayout()
        form.addRow("first input", self.first)
        form.addRow("second input", self.second)
        form.addRow("fused layers", self.fused)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compute_button)
        buttons.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.runner.bar)  # below the buttons, shown while a job runs
        layout.addWidget(self.table, 1)  # the table takes the dock's free height
        layout.addWidget(self.status)

        self.results: dict[str, dict[str, float]] = {}
        self._known: list[str] = []  # image layers seen by the last refresh
        self.last_outcome: MetricsOutcome | None = None
        self.compute_button.clicked.connect(self.compute)
        self.first.currentTextChanged.connect(self._refresh_fused)
        self.second.currentTextChanged.connect(self._refresh_fused)
        self.copy_button.clicked.connect(self.copy_csv)
        self.layer_watcher = LayerWatcher(self.viewer, self._refresh_layers, self)
        self._refresh_layers()

    # ----------------------------------------------------------- layer pickers
    def _refresh_layers(self) -> None:
        """Re-list image layers, keeping the choices that still exist.

        New inputs default to the first two layers that are neither fused
        nor feature layers (those a fused layer records as its inputs, if
        it is the only fused layer).
        """
        layers = image_layers(self.viewer)
        names = [ly.name for ly in layers]
        plain = [ly.name for ly in layers if not _is_result(ly.metadata)]
        fused = [ly for ly in layers if is_fused_layer(ly.metadata)]
        if len(fused) == 1:
            recorded = [fused[0].metadata.get(k) for k in ("first_layer", "second_layer")]
            if all(r in names for r in recorded):
                plain = [*recorded, *(n for n in plain if n not in recorded)]
        defaults = plain + [n for n in names if n not in plain]
        for combo, default in ((self.first, 0), (self.second, 1)):
            old = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if old in names:
                combo.setCurrentText(old)
            elif len(defaults) > default:
                combo.setCurrentText(defaults[default])
            combo.blockSignals(False)
        self._refresh_fused()

    def _refresh_fused(self, _text: str = "") -> None:
        """Re-list the fused-layer candidates: image layers but the inputs and feature layers."""
        selected = set(self.selected_fused())
        known = set(self._known)
        inputs = {self.first.currentText(), self.second.currentText()}
        self.fused.clear()
        self._known = []
        for layer in image_layers(self.viewer):
            self._known.append(layer.name)
            if layer.name in inputs or _is_feature_layer(layer.metadata):
                continue
            item = QListWidgetItem(layer.name, self.fused)
            new = layer.name not in known
            item.setSelected(layer.name in selected or (new and is_fused_layer(layer.metadata)))

    def selected_fused(self) -> list[str]:
        """Names of the selected fused layers, in list order."""
        items = (self.fused.item(i) for i in range(self.fused.count()))
        return [item.text() for item in items if item.isSelected()]

    def set_inputs(self, first: str, second: str, fused: list[str]) -> None:
        """Choose the inputs and the fused layers by name (for scripts and tests)."""
        self.first.setCurrentText(first)
        self.second.setCurrentText(second)
        self._refresh_fused()
        for i in range(self.fused.count()):
            self.fused.item(i).setSelected(self.fused.item(i).text() in fused)

    # ------------------------------------------------------------- computing
    @property
    def running(self) -> bool:
        """Whether a computation is running."""
        return self.runner.running

    def _source(self, name: str, what: str) -> MetricsSource:
        from napari.layers import Image

        if not name or name not in self.viewer.layers:
            raise ValueError(f"choose the {what}")
        layer = self.viewer.layers[name]
        if not isinstance(layer, Image):
            raise TypeError(f"the {what} {name!r} is not an image layer")
        data, index = displayed_plane(layer, self.viewer)
        return MetricsSource(name, data, index)

    def compute(self) -> GeneratorWorker | None:
        """Start computing the metrics in a worker thread (None if refused)."""
        if self.running:
            return None
        skipped: dict[str, str] = {}
        try:
            first = self._source(self.first.currentText(), "first input")
            second = self._source(self.second.currentText(), "second input")
            size = _plane_size(first)
            if _plane_size(second) != size:
                raise ValueError(
                    f"the inputs differ in size: {first.name!r} {size}, "
                    f"{second.name!r} {_plane_size(second)}"
                )
            names = self.selected_fused()
            if not names:
                raise ValueError("select one or more fused layers")
            fused = []
            for name in names:
                try:
                    src = self._source(name, "fused layer")
                except (TypeError, ValueError) as exc:
                    skipped[name] = str(exc)
                    continue
                if _plane_size(src) != size:
                    skipped[name] = f"it is {_plane_size(src)} pixels, the inputs are {size}"
                    continue
                fused.append(src)
        except (TypeError, ValueError) as exc:
            self.runner.fail(f"Cannot compute metrics: {exc}")
            return None

        def work(_progress: Progress) -> MetricsOutcome:
            outcome = metrics_job(first, second, fused)
            outcome.skipped = {**skipped, **outcome.skipped}
            if outcome.error is not None:  # returned, not raised: raised for the runner
                raise _Failed(outcome)
            return outcome

        return self.runner.start(
            work, f"Fusion metrics: {len(names)} layer(s)", done=self._show,
            describe=self._describe, running=f"Computing metrics for {len(names)} layer(s) ...",
        )  # fmt: skip

    def _describe(self, exc: BaseException) -> str:
        self.last_outcome = exc.outcome if isinstance(exc, _Failed) else MetricsOutcome(error=exc)
        return f"Metrics failed: {self.last_outcome.error}"

    def _show(self, outcome: MetricsOutcome) -> str:
        self.last_outcome = outcome
        self.results = outcome.rows
        self._fill_table(outcome.rows)
        text = f"Metrics of {len(outcome.rows)} fused layer(s); best in bold."
        if not outcome.rows:
            text = "No fused layer could be scored."
        if outcome.skipped:
            from napari.utils.notifications import show_warning

            text += " " + skipped_text(outcome.skipped)
            show_warning(f"Fusion metrics: {skipped_text(outcome.skipped)}")
        return text

    # ----------------------------------------------------------------- table
    def _fill_table(self, rows: dict[str, dict[str, float]]) -> None:
        """One column per scored layer (in order), one row per metric, the best in bold."""
        table = self.table
        table.clearContents()
        table.setColumnCount(len(rows))
        best = self.best_values(rows)
        for c, (name, values) in enumerate(rows.items()):
            head = QTableWidgetItem(name)
            head.setData(VALUE_ROLE, name)
            head.setToolTip(name)
            table.setHorizontalHeaderItem(c, head)
            for r, metric in enumerate(METRICS):
                value = float(values.get(metric, math.nan))
                is_best = metric in best and value == best[metric]
                tip = f"{name}: {metric} = {value!r}" + (f" (best {metric})" if is_best else "")
                item = _number_item(value, tip)
                if is_best:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                table.setItem(r, c, item)
        self.copy_button.setEnabled(bool(rows))

    @staticmethod
    def best_values(rows: dict[str, dict[str, float]]) -> dict[str, float]:
        """Per metric, the best finite value over the rows (by METRICS' direction)."""
        best: dict[str, float] = {}
        for metric, (direction, _) in METRICS.items():
            vals = [v[metric] for v in rows.values() if metric in v and math.isfinite(v[metric])]
            if vals:
                best[metric] = max(vals) if direction == "higher" else min(vals)
        return best

    def table_rows(self) -> list[tuple[str, list[float]]]:
        """The table's columns, left to right: (layer name, values in METRICS order)."""
        table = self.table
        return [
            (table.horizontalHeaderItem(c).data(VALUE_ROLE),
             [table.item(r, c).data(VALUE_ROLE) for r in range(len(METRICS))])
            for c in range(table.columnCount())
        ]  # fmt: skip

    def csv_text(self) -> str:
        """The table as CSV (header ``layer,EN,...``, a line per layer), full precision."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["layer", *METRICS])
        for name, values in self.table_rows():
            writer.writerow([name, *(repr(float(v)) for v in values)])
        return buf.getvalue()

    def copy_csv(self) -> str:
        """Put :meth:`csv_text` on the clipboard and return it."""
        text = self.csv_text()
        QApplication.clipboard().setText(text)
        self.status.setText(f"Copied {self.table.columnCount()} layer(s) as CSV.")
        return text
