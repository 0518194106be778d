"""The "Compare methods" button and table the fusion, stack and pansharpen widgets share.

:func:`add_compare_controls` gives a :class:`~._job.JobWidget` the button and
the table; the widget's ``compare_job()`` returns a :class:`CompareJob` whose
work calls :mod:`napari_gifnet.plugin.compare_methods` in the widget's worker.
Each method's result becomes the layer ``"compare: <base> (<Method>)"``, the
layers of a comparison grouped with only the best one visible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from magicgui.widgets import Label, PushButton, Table

from ..compare_methods import Comparison, comparison_layer_name, group_layers
from ..layer_output import put_image
from ._form import number_text
from ._job import Work

__all__ = ["BEST_MARK", "CompareJob", "add_compare_controls", "table_data"]

#: Appended to the best method's name in the table.
BEST_MARK = " (best)"


@dataclass
class CompareJob:
    """What a widget's ``compare_job()`` returns.

    Attributes
    ----------
    work
        ``work(progress) -> Comparison``, run in the worker.
    label
        The progress bar's name.
    base
        The layer name before the method, e.g. ``"A + B"``.
    look
        ``look(method_result) -> dict``: the keywords of each result layer
        (colormap, scale, ...).
    """

    work: Work
    label: str
    base: str
    look: Callable[[Any], dict[str, Any]] = field(default=lambda _r: {})


def table_data(comparison: Comparison) -> dict[str, Any]:
    """The table's value: one row per method (the best marked), one column per metric."""
    best = comparison.result(comparison.best).label if comparison.best else None
    index = [label + (BEST_MARK if label == best else "") for label, _ in comparison.rows()]
    data = [[number_text(v) for v in values] for _, values in comparison.rows()]
    return {"data": data, "index": index, "columns": list(comparison.metric_names)}


def add_compare_controls(widget: Any) -> None:
    """Add ``compare_button``, ``compare_note`` and ``compare_table`` to a job widget.

    The widget implements ``compare_job() -> CompareJob`` (raise
    ``ValueError`` / ``TypeError`` to refuse, like ``prepare``), passing its
    ``compare_methods`` attribute on (None, set here: every method of the
    task; a sequence of method keys narrows the comparison). The controls are
    appended at the end of the form.
    """
    widget.compare_button = PushButton(text="Compare methods")
    widget.compare_button.tooltip = (
        "Run every method of the task on the current layers; each result becomes a "
        "'compare: ... (Method)' layer (only the best shown), with the metrics below. "
        "Use it to check which method suits your own data"
    )
    widget.compare_note = Label(label="", value="")
    widget.compare_note.native.setWordWrap(True)
    widget.compare_note.tooltip = (
        "The best method of the last comparison and the rule that chose it, and any method "
        "that failed"
    )
    widget.compare_table = Table(value={"data": [], "index": [], "columns": []})
    widget.compare_table.read_only = True
    widget.compare_table.tooltip = (
        "One row per method compared, one column per metric: higher is better, except "
        "D_lambda and D_s (distortions); the best row is marked (best). No-reference "
        "metrics: a hint, not a verdict against the truth (docs/quality.md has those)"
    )
    widget.compare_table.visible = False
    widget.compare_methods = None
    widget.last_comparison = None
    widget.extend([widget.compare_button, widget.compare_note, widget.compare_table])
    widget.compare_button.changed.connect(lambda *_: compare(widget))
    # one job at a time: the runner disables both buttons while Run or Compare runs
    widget.runner.run_buttons.append(widget.compare_button)


def compare(widget: Any) -> Any:
    """Start the widget's comparison in its worker; returns the worker (None if refused)."""
    if widget.running:
        return None
    try:
        job: CompareJob = widget.compare_job()
    except (TypeError, ValueError) as exc:
        widget.fail(f"Cannot compare: {exc}")
        return None

    return widget.runner.start(
        job.work, job.label, done=lambda comparison: show_comparison(widget, comparison, job),
        describe=lambda exc: f"Comparison failed: {exc}",
        running=f"Comparing methods: {job.label} ...",
    )  # fmt: skip


def show_comparison(widget: Any, comparison: Comparison, job: CompareJob) -> str:
    """Put the comparison's layers and fill the table (GUI thread); returns the status line."""
    layers, best_layer = [], None
    for r in comparison.results:
        name = comparison_layer_name(job.base, r.label)
        meta = {"method": r.method, "metrics": dict(r.metrics), "compared": comparison.kind}
        layer = put_image(widget.viewer, name, r.image, metadata=meta, **job.look(r))
        layers.append(layer)
        if r.method == comparison.best:
            best_layer = layer
    # earlier results of other methods on the same inputs join the group, hidden
    stem = comparison_layer_name(job.base, "")[:-1]  # "compare: <base> ("
    earlier = [ly for ly in widget.viewer.layers if ly.name.startswith(stem) and ly not in layers]
    group_layers(widget.viewer, [*earlier, *layers], visible=best_layer)
    widget.compare_table.value = table_data(comparison)
    widget.compare_table.visible = bool(comparison.results)
    widget.last_comparison = comparison
    note = f"Best by {comparison.ranked_by}: {best_layer.name}." if best_layer else ""
    if comparison.errors:
        note += " Failed: " + "; ".join(comparison.errors.values())
    widget.compare_note.value = note.strip()
    return f"Compared {len(layers)} methods." + (f" {note}" if note else "")
