"""The registration controls of the "GIFNet fusion" dock widget.

Shown only while "align second onto first" is a registration mode.
*Register* runs :func:`~napari_gifnet.plugin.layer_registration.register_layers`
in the widget's worker and moves the second layer onto the first by its
``affine`` (its data never change); *Undo move*, *Save...* and the check view
(:class:`~napari_gifnet.plugin.check_view.CheckView`) act on that move.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, PushButton, Slider
from qtpy.QtWidgets import QFileDialog

from ..check_view import CHECK_MODES, CheckView
from ._form import box, short_combo
from ._job import on_destroyed

if TYPE_CHECKING:  # pragma: no cover
    from napari.layers import Image, Points

__all__ = [
    "LANDMARK_FITS", "REGISTRATION_CHOICES", "REGISTRATION_MODES",
    "RegistrationPanel", "landmark_pairs", "points_in_world", "transform_path",
]  # fmt: skip

#: The registration modes of "align second onto first": label -> mode.
REGISTRATION_CHOICES = [
    ("rigid (mutual information)", "rigid"),
    ("similarity (mutual information)", "similarity"),
    ("affine (mutual information)", "affine"),
    ("from landmarks (two Points layers)", "landmarks"),
]
REGISTRATION_MODES = tuple(mode for _, mode in REGISTRATION_CHOICES)
#: The transforms a landmark fit may estimate.
LANDMARK_FITS = ("rigid", "similarity", "affine")
#: Seconds between two progress reports of a registration (the GUI redraws on each).
REPORT_S = 0.2
_CHECK_CHOICES = [("off", None), *((label, key) for key, label in CHECK_MODES.items())]
TIPS = {
    "points": (
        "Landmarks: a Points layer of positions on the first input and one of the same "
        "positions, in the same order, on the second (at least 2 pairs, 3 for an affine fit; "
        "in 3-D 3 pairs, 4 for an affine fit)"
    ),
    "fit": (
        "What the landmarks fit (least squares): rigid (rotation + shift), similarity "
        "(+ one scale) or affine (+ scales and shear)"
    ),
    "register_button": (
        "Find the transform that puts the second input onto the first and move the second "
        "layer by it (its affine; the data are not changed)"
    ),
    "undo_button": "Put the second layer back where it was before it was registered",
    "save_button": (
        "Save the transform as a JSON file (matrix, parameters, spacings, report), to reuse "
        "on another pair of the same setup: napari-gifnet register --apply"
    ),
    "check": (
        "Look at the fit before fusing: the first input and the second as moved, in a "
        "checkerboard, a wipe (drag on the canvas or use the slider) or red-green overlay "
        "(yellow where they agree)"
    ),
    "wipe": "Where the wipe's boundary is: the first input left of it, the second right of it",
}


def points_in_world(layer: Points) -> np.ndarray:
    """The points of a Points layer in world coordinates, (N, ndim) float64."""
    data = np.asarray(layer.data, dtype=float)
    if data.size == 0:
        return data.reshape(0, layer.ndim)
    return np.array([layer.data_to_world(p) for p in data], dtype=float).reshape(len(data), -1)


def landmark_pairs(
    first_points: Points | None, second_points: Points | None, fit: str, ndim: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """The matched landmarks of two Points layers (matched by order), in world coordinates.

    Parameters
    ----------
    first_points, second_points
        The Points layers on the first and on the second input.
    fit
        ``"rigid"``, ``"similarity"`` or ``"affine"``.
    ndim
        The images' number of spatial dimensions, 2 or 3 (:data:`MIN_PAIRS` of
        :mod:`napari_gifnet.workflows.landmarks` says how many pairs each fit needs).

    Returns
    -------
    first, second : np.ndarray
        (N, ndim) arrays, the last ``ndim`` world coordinates of each point.

    Raises
    ------
    ValueError
        A layer is missing, or of another dimensionality; the two layers hold
        different numbers of points; fewer pairs than the fit needs.
    """
    if first_points is None or second_points is None:
        raise ValueError(
            "landmarks need two Points layers: add one with points on the first input and one "
            "with the same points, in the same order, on the second"
        )
    if first_points is second_points:
        raise ValueError(f"choose two different Points layers (both are {first_points.name!r})")
    a, b = points_in_world(first_points), points_in_world(second_points)
    if len(a) != len(b):
        raise ValueError(
            f"{first_points.name!r} has {len(a)} points and {second_points.name!r} has "
            f"{len(b)}: the points are matched by order, so both need the same number"
        )
    from ...workflows.landmarks import MIN_PAIRS  # with the registration code: not at start-up

    need = MIN_PAIRS[3 if ndim >= 3 else 2][fit]
    if len(a) < need:
        raise ValueError(
            f"a {ndim}-D {fit} fit needs at least {need} point pairs; {first_points.name!r} and "
            f"{second_points.name!r} have {len(a)}"
        )
    for layer, pts in ((first_points, a), (second_points, b)):
        if pts.shape[1] < ndim:
            raise ValueError(
                f"{layer.name!r} holds {pts.shape[1]}-D points; the images are {ndim}-D"
            )
    return a[:, -ndim:], b[:, -ndim:]


def transform_path(path: str | Path, layers: Any = ()) -> Path:
    """Where *Save...* writes a transform: ``path`` with ``.json`` added when it lacks it.

    Parameters
    ----------
    path
        The path chosen.
    layers
        The open layers (their ``source.path`` files are inputs, never written).

    Returns
    -------
    Path
        The ``.json`` path.

    Raises
    ------
    ValueError
        ``path`` (or the ``.json`` path) is an open layer's source file, or
        an existing file that is not a ``.json`` one.
    """
    chosen = Path(path).expanduser()
    target = chosen if chosen.suffix.lower() == ".json" else chosen.with_name(chosen.name + ".json")
    sources = [Path(p).expanduser() for ly in layers if (p := getattr(ly.source, "path", None))]
    for candidate in dict.fromkeys((chosen, target)):
        for source in sources:
            if _same_file(candidate, source):
                raise ValueError(
                    f"{str(candidate)!r} is the source file of an open layer: choose a .json name "
                    "for the transform"
                )
    if chosen.suffix.lower() != ".json" and chosen.exists():
        raise ValueError(
            f"{str(chosen)!r} is an existing file that is not a .json file: choose a .json name "
            "for the transform"
        )
    return target


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


class RegistrationPanel:
    """The registration controls of a fusion widget and their state (GUI thread).

    Parameters
    ----------
    widget
        The :class:`~.fusion_widget.FusionWidget` (its ``first`` / ``second``
        pickers, ``align`` mode, ``runner`` and ``viewer``).

    Attributes
    ----------
    controls : list
        The rows to put in the form, in order.
    registration : Registration or None
        The last registration, until *Undo move*; :meth:`is_current` says
        whether it still applies to the layers.
    """

    def __init__(self, widget: Any) -> None:
        self.widget = widget
        self.viewer = widget.viewer
        self.first_points = ComboBox(label="first's points", choices=self._points_choices)
        self.second_points = ComboBox(label="second's points", choices=self._points_choices)
        short_combo(self.first_points, 8)
        short_combo(self.second_points, 8)
        self.points = box([self.first_points, self.second_points], label="landmarks")
        self.fit = ComboBox(label="landmark fit", choices=list(LANDMARK_FITS), value="similarity")
        self.register_button = PushButton(text="Register")
        self.undo_button = PushButton(text="Undo move", enabled=False)
        self.save_button = PushButton(text="Save...", enabled=False)
        self.buttons = box(
            [self.register_button, self.undo_button, self.save_button], label="registration"
        )
        self.check = ComboBox(label="check view", choices=_CHECK_CHOICES, value=None)
        self.wipe = Slider(label="wipe (%)", min=0, max=100, value=50)
        for name, tip in TIPS.items():
            getattr(self, name).tooltip = tip
        self.first_points.tooltip = self.second_points.tooltip = TIPS["points"]
        self.controls = [self.points, self.fit, self.buttons, self.check, self.wipe]
        self.registration: Any = None
        self._names: dict[str, str] = {}  # the layers it registered
        self._unit: str | None = None  # their world unit, saved with the transform
        self._key: tuple[Any, ...] | None = None  # what the registration was made for
        self._original: tuple[Any, np.ndarray] | None = None  # (second layer, its first affine)
        #: The registration mode chosen (None when "align" is not a registration mode).
        self.mode: str | None = None
        self.check_view = CheckView(self.viewer, on_position=self._dragged)
        on_destroyed(widget.native, self.check_view.close)  # stop following the dims slider
        self.register_button.changed.connect(lambda: self.register())
        # one job at a time: the runner turns Register off while any job runs, on as it ends
        widget.runner.run_buttons.append(self.register_button)
        self.undo_button.changed.connect(self.undo)
        self.save_button.changed.connect(lambda: self.save())
        # the Qt signal: magicgui's ``changed`` is silent when the value becomes None ("off")
        self.check.native.currentIndexChanged.connect(self.show_check)
        self.wipe.changed.connect(self._wipe_moved)
        self.set_mode(None)

    # ----------------------------------------------------------------- form
    def set_mode(self, mode: str | None) -> None:
        """Show the rows of ``mode`` (a registration mode), or hide them all (anything else)."""
        self.mode = mode if mode in REGISTRATION_MODES else None
        on = self.mode is not None
        self.points.visible = self.fit.visible = self.mode == "landmarks"
        self.buttons.visible = self.check.visible = on
        self.wipe.visible = on and self.check.value == "wipe"
        if not on:
            self.check.value = None  # removes the check view

    def _points_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        from napari.layers import Points

        return [(ly.name, ly) for ly in self.viewer.layers if isinstance(ly, Points)]

    def refresh_layers(self) -> None:
        """Re-list the Points layers; the second's picker avoids the first's layer."""
        self.first_points.reset_choices()
        self.second_points.reset_choices()
        points = [value for _, value in self._points_choices()]
        if len(points) > 1 and self.second_points.value in (None, self.first_points.value):
            self.second_points.value = next(p for p in points if p is not self.first_points.value)
        if self.check_view.lost:  # the user removed it
            self.check_view.remove()
            self.check.value = None

    # ---------------------------------------------------------------- state
    def _state(self) -> tuple[tuple[Any, ...], np.ndarray | None]:
        """What a registration is made for (layers, data, mode, landmarks, where the first
        is), and the second's affine."""
        first, second = self.widget.first.value, self.widget.second.value

        def of(layer: Any) -> tuple[Any, ...]:
            return (id(layer), id(getattr(layer, "data", None)))

        key: tuple[Any, ...] = (*of(first), *of(second), self.mode)
        if first is not None:  # where the first is: the second was moved onto it
            world = [first.scale, first.translate, first.rotate, first.shear, first.affine]
            key += tuple(np.asarray(getattr(t, "affine_matrix", t), float).tobytes() for t in world)
        if self.mode == "landmarks":
            pts = [self.first_points.value, self.second_points.value]
            key += (self.fit.value, *(np.asarray(p.data).tobytes() if p else None for p in pts))
        affine = np.asarray(second.affine.affine_matrix) if second is not None else None
        return key, affine

    def is_current(self) -> bool:
        """Whether the last registration is of these layers, mode and landmarks, and the
        second layer still sits where it moved it."""
        if self.registration is None or self._key is None:
            return False
        key, affine = self._state()
        old_key, old_affine = self._key
        return key == old_key and affine is not None and np.allclose(affine, old_affine)

    def provenance(self) -> dict[str, Any] | None:
        """The current registration's metadata entry (None if none is current)."""
        return self.registration.provenance() if self.is_current() else None

    # ----------------------------------------------------------------- jobs
    def prepare(self) -> tuple[Callable[..., Any], str]:
        """The registration job of the form (GUI thread, no pixels read).

        Raises
        ------
        ValueError
            No registration mode, missing layers, or landmarks that cannot work.
        """
        from ..layer_registration import register_layers

        first, second = self.widget.first.value, self.widget.second.value
        if self.mode is None:
            raise ValueError("choose a registration mode in 'align second onto first'")
        if first is None or second is None:
            raise ValueError("choose two image layers to register")
        if first is second:
            raise ValueError(f"choose two different image layers (both are {first.name!r})")
        kwargs: dict[str, Any] = {}
        transform = self.mode
        if self.mode == "landmarks":
            transform = self.fit.value
            ndim = first.ndim - (1 if first.rgb else 0)
            fixed, moving = landmark_pairs(
                self.first_points.value, self.second_points.value, transform, ndim
            )
            kwargs = {"fixed_points": fixed, "moving_points": moving}

        def work(progress: Callable[[int, int], None]) -> Any:
            return register_layers(
                first, second, transform, progress=_every(progress, REPORT_S), **kwargs
            )

        how = "landmarks" if self.mode == "landmarks" else "mutual information"
        return work, f"Register {second.name} onto {first.name} ({transform}, {how})"

    def register(self, then: Callable[[], Any] | None = None) -> Any:
        """Register the second layer onto the first in the worker, then move it.

        ``then`` (the fusion) starts when the move is done. Returns the
        worker (None if refused: the status line says why).
        """
        widget = self.widget
        if widget.running:
            return None
        try:
            work, label = self.prepare()
        except (TypeError, ValueError) as exc:
            widget.fail(f"Cannot register: {exc}")
            return None
        key, _ = self._state()
        first, second = widget.first.value, widget.second.value

        def done(registration: Any) -> str:
            text = self._moved(first, second, registration, key)
            if then is None:
                return text
            then()
            return widget.runner.status_line.full

        # Register is one of the runner's buttons: off while the job runs, back as it ends
        return widget.runner.start(
            work, label, done=done, describe=lambda exc: f"Registration failed: {exc}"
        )

    def _moved(self, first: Image, second: Image, registration: Any, key: tuple[Any, ...]) -> str:
        from ..layer_registration import move_layer

        previous = move_layer(second, registration, fixed=first)
        if self._original is None or self._original[0] is not second:
            self._original = (second, np.asarray(previous, dtype=float))
        self.registration = registration
        self._names = {"fixed": first.name, "moving": second.name}
        self._unit = str(first.units[-1])  # of the world coordinates (napari's "pixel": none)
        self._key = (key, np.asarray(second.affine.affine_matrix))
        self.undo_button.enabled = self.save_button.enabled = True
        self.check_view.refresh()
        return f"Registered {second.name!r} onto {first.name!r}: {registration.report.describe()}"

    def undo(self, _value: Any = None) -> None:
        """Put the second layer back where it was before it was registered."""
        from ..layer_registration import restore_layer

        if self._original is None:
            return
        layer, affine = self._original
        self._original = None
        self.registration, self._key = None, None
        self.undo_button.enabled = self.save_button.enabled = False
        if layer in self.viewer.layers:
            restore_layer(layer, affine)
            self.check_view.refresh()
            self.widget.runner.status_line.show(f"{layer.name!r} is back where it was.")

    def save(self, path: str | Path | None = None) -> Path | None:
        """Save the last registration's transform as JSON at ``path`` (None: ask for a file),
        the path checked by :func:`transform_path`. Returns the file written, which the status
        line names (None when refused or cancelled: the status line says why)."""
        from ...io.transform_file import save_transform

        if self.registration is None:
            self.widget.fail("Nothing to save: register the second layer first.")
            return None
        names = self._names
        if path is None:
            name = f"{names.get('moving', 'second')}_onto_{names.get('fixed', 'first')}"
            chosen, _ = QFileDialog.getSaveFileName(
                self.widget.native, "Save the transform", f"{name}.json", "JSON (*.json)"
            )
            if not chosen:
                return None
            path = chosen
        try:
            path = transform_path(path, self.viewer.layers)
        except ValueError as exc:
            self.widget.fail(f"Cannot save the transform: {exc}")
            return None
        try:
            written = save_transform(path, self.registration, layers=names, unit=self._unit)
        except (OSError, ValueError) as exc:
            self.widget.fail(f"Could not save the transform to {path}: {exc}")
            return None
        self.widget.runner.status_line.show(f"Transform saved: {written}")
        return written

    # ----------------------------------------------------------- check view
    def show_check(self, _value: Any = None) -> None:
        """Show the chosen check view of the two inputs (the second as moved), or remove it."""
        mode = self.check.value
        self.wipe.visible = self.mode is not None and mode == "wipe"
        first, second = self.widget.first.value, self.widget.second.value
        if mode is None or first is None or second is None or first is second:
            self.check_view.remove()
            return
        try:
            self.check_view.position = self.wipe.value / 100
            self.check_view.show(first, second, mode)
        except ValueError as exc:
            self.widget.fail(f"No check view: {exc}")

    def layers_changed(self) -> None:
        """The input pickers changed: the check view follows them."""
        if self.check.value is not None:
            self.show_check()

    def _wipe_moved(self, value: float) -> None:
        self.check_view.set_position(float(value) / 100)

    def _dragged(self, position: float) -> None:
        value = int(round(position * 100))
        if self.wipe.value != value:
            self.wipe.value = value


def _every(progress: Callable[[int, int], None], seconds: float) -> Callable[[int], None]:
    """The registration's progress: "0 / 1" at most every ``seconds`` while the optimiser
    iterates (its number of iterations is not known ahead; each call lets Cancel stop it)."""
    last = [-float("inf")]

    def report(_iterations: int) -> None:
        now = time.monotonic()
        if now - last[0] >= seconds:
            last[0] = now
            progress(0, 1)

    return report
