"""The check view of a registration: the first layer and the second as moved, side by side.

Before fusing a registered pair, a user checks the fit by eye: :class:`CheckView`
samples the second layer on the plane the viewer shows of the first
(:func:`moved_onto_first`) and composes both, 0-1 by their contrast limits, in
one layer (:data:`CHECK_LAYER`) just above them: :func:`checkerboard`,
:func:`wipe` or :func:`overlay`. Qt-free: the fusion widget's registration panel
drives it; the functions that compose the images are numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine.colour import LUMA_WEIGHTS
from .fusion_plan import _transforms, _world_matrix

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image

__all__ = [
    "CHECK_LAYER", "CHECK_MODES", "CheckView", "checkerboard", "compose", "is_check_layer",
    "moved_onto_first", "overlay", "plane_index", "remove_check_view", "to_unit", "wipe",
]  # fmt: skip

#: The check views: key -> label (``None`` is off).
CHECK_MODES = {"checkerboard": "checkerboard", "wipe": "wipe", "overlay": "red-green overlay"}
#: The check view layer's name.
CHECK_LAYER = "check view"
#: ``metadata["gifnet_layer"]`` of the check view layer.
CHECK_TAG = "check view"
#: Tiles across the shorter side of a checkerboard.
TILES = 8


def to_unit(data: Any, contrast_limits: tuple[float, float], rgb: bool = False) -> np.ndarray:
    """An image as float32 in 0-1 by its contrast limits; colour (..., 3/4) by its luma.

    Parameters
    ----------
    data
        The image (numpy or array-like).
    contrast_limits
        The (low, high) values shown black and white.
    rgb
        Whether the last axis holds colour channels.

    Returns
    -------
    np.ndarray
        float32, clipped to 0-1, without the colour axis.
    """
    image = np.asarray(data, dtype=np.float32)
    if rgb:
        image = image[..., :3] @ np.asarray(LUMA_WEIGHTS, np.float32)
    lo, hi = (float(v) for v in contrast_limits)
    scale = 1.0 / (hi - lo) if hi > lo else 1.0
    return np.clip((image - lo) * scale, 0.0, 1.0).astype(np.float32, copy=False)


def _spatial_shape(layer: Any) -> tuple[int, ...]:
    shape = tuple(int(s) for s in _data(layer).shape)
    return shape[:-1] if layer.rgb else shape


def _data(layer: Any) -> Any:
    """The layer's full-resolution data (numpy or lazy), never read here."""
    return layer.data[0] if layer.multiscale else layer.data


def plane_index(layer: Any, point: Any) -> tuple[int, ...]:
    """The leading data indices (all axes but the last two) of ``layer`` at world ``point``.

    Parameters
    ----------
    layer
        An image layer.
    point
        A world position (e.g. ``viewer.dims.point``); its last axes are the layer's.

    Returns
    -------
    tuple of int
        One index per leading axis, rounded and clipped to the layer's shape
        (empty for a 2-D layer).
    """
    shape = _spatial_shape(layer)
    if len(shape) <= 2:
        return ()
    coords = np.asarray(layer.world_to_data(np.asarray(point, dtype=float)), dtype=float)
    lead = np.nan_to_num(coords[: len(shape) - 2])
    return tuple(int(np.clip(np.rint(c), 0, n - 1)) for c, n in zip(lead, shape[:-2]))


#: Pixels resampled at a time (bounds the coordinate arrays of a large plane).
_BLOCK = 1 << 18


def _sample_plane(
    second: Any, t: np.ndarray, index: tuple[int, ...], shape: tuple[int, int]
) -> np.ndarray:
    """The second layer, 0-1, at the first's plane ``index`` (``shape`` pixels); ``t`` maps
    the first's data coordinates to the second's. Reads only the second's region that
    the plane's pixels fall in (a few planes of a volume); 0 where it does not cover."""
    from ..workflows.registration import affine_slab
    from .resampling import resample_block

    nd = t.shape[0] - 1
    m, off = t[:nd, :nd], t[:nd, nd]
    b_shape = _spatial_shape(second)
    (h, w), lead = shape, (1,) * len(index)
    out = np.zeros((h, w), dtype=np.float32)
    box = affine_slab(m, off, (*index, 0, 0), (*lead, h, w), b_shape)
    if any(s.start == s.stop for s in box):
        return out  # the plane misses the second
    region = to_unit(_data(second)[box], tuple(second.contrast_limits), bool(second.rgb))
    rows = max(1, _BLOCK // max(w, 1))
    for r0 in range(0, h, rows):
        block = (*lead, min(rows, h - r0), w)
        out[r0 : r0 + rows] = resample_block(region, box, m, off, (*index, r0, 0), block,
                                             b_shape, 0.0).reshape(-1, w)  # fmt: skip
    return out


def moved_onto_first(
    first: Image, second: Image, index: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One plane of the first layer and the second there, 0-1 by their contrast limits.

    The plane is the first layer's last two axes at ``index`` (its leading
    data indices: the slice of a (Z, Y, X) volume; all of a 2-D layer). The
    second layer is sampled (linearly) where napari shows it now: its whole
    world transform (scale, translate, rotate, shear, affine), so a layer
    moved by a registration appears moved. Pixels of the plane that the
    second does not cover are 0. Only that plane of the first and the region
    of the second it falls in are read, so a lazy (Dask) layer computes a
    few chunks, never the whole array.

    Parameters
    ----------
    first, second
        The image layers.
    index
        The plane's leading data indices (default: 0 on each leading axis);
        see :func:`plane_index`.

    Returns
    -------
    first, second : np.ndarray
        float32 (H, W) arrays, the first layer's last two (spatial) sides.

    Raises
    ------
    ValueError
        The layers have different numbers of (spatial) dimensions.
    """
    a_shape, b_shape = _spatial_shape(first), _spatial_shape(second)
    if len(a_shape) != len(b_shape):
        raise ValueError(
            f"{first.name!r} ({len(a_shape)}-D) and {second.name!r} ({len(b_shape)}-D) have "
            "different numbers of dimensions: no check view"
        )
    nd = len(a_shape)
    lead = tuple(int(i) for i in index) if index is not None else (0,) * (nd - 2)
    if len(lead) != nd - 2:
        raise ValueError(f"a plane of {first.name!r} needs {nd - 2} indices, not {len(lead)}")
    a = to_unit(_data(first)[lead], tuple(first.contrast_limits), bool(first.rgb))
    # the first's data coordinates -> the second's
    t = np.linalg.inv(_world_matrix(second, nd)) @ _world_matrix(first, nd)
    if np.allclose(t, np.eye(nd + 1), atol=1e-9) and a_shape == b_shape:
        return a, to_unit(_data(second)[lead], tuple(second.contrast_limits), bool(second.rgb))
    return a, _sample_plane(second, t, lead, a_shape[-2:])  # type: ignore[arg-type]


def checkerboard(a: np.ndarray, b: np.ndarray, tile: int | None = None) -> np.ndarray:
    """Square tiles taken in turn from ``a`` (the top-left one) and ``b``.

    Tiles run over the last two axes; every plane of a volume has the same
    pattern. ``tile`` is the side in pixels (default: :data:`TILES` tiles
    across the shorter side, at least 4 pixels).
    """
    h, w = a.shape[-2:]
    side = int(tile) if tile else max(4, min(h, w) // TILES)
    rows, cols = np.arange(h)[:, None] // side, np.arange(w)[None, :] // side
    return np.where((rows + cols) % 2 == 1, b, a)


def wipe(a: np.ndarray, b: np.ndarray, position: float) -> np.ndarray:
    """``a`` left of column ``round(position * width)``, ``b`` from there on (``position`` 0-1)."""
    boundary = int(round(min(max(float(position), 0.0), 1.0) * a.shape[-1]))
    out = b.copy()
    out[..., :boundary] = a[..., :boundary]
    return out


def overlay(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """An RGB image (..., 3): red ``a``, green ``b``, no blue (yellow where they agree)."""
    return np.stack([a, b, np.zeros_like(a)], axis=-1)


def compose(a: np.ndarray, b: np.ndarray, mode: str, position: float = 0.5) -> np.ndarray:
    """The check view image of ``mode`` (a key of :data:`CHECK_MODES`)."""
    if mode == "checkerboard":
        return checkerboard(a, b)
    if mode == "wipe":
        return wipe(a, b, position)
    if mode == "overlay":
        return overlay(a, b)
    raise ValueError(f"check view must be one of {', '.join(CHECK_MODES)}, not {mode!r}")


def _plane_origin(layer: Any, index: tuple[int, ...]) -> tuple[float, ...]:
    """The ``translate`` that puts a one-plane layer, with ``layer``'s other transforms,
    on ``layer``'s plane ``index`` (its leading data indices)."""
    from napari.utils.transforms import Affine

    physical = Affine(scale=layer.scale, translate=layer.translate, rotate=layer.rotate,
                      shear=layer.shear)  # fmt: skip
    return tuple(float(v) for v in physical([*index, 0, 0]))


def remove_check_view(viewer: napari.Viewer) -> None:
    """Remove the check view layer(s) from ``viewer``, if any."""
    for layer in [ly for ly in viewer.layers if is_check_layer(ly)]:
        viewer.layers.remove(layer)


def is_check_layer(layer: Any) -> bool:
    """Whether ``layer`` is a check view layer."""
    metadata = getattr(layer, "metadata", None)
    return isinstance(metadata, dict) and metadata.get("gifnet_layer") == CHECK_TAG


class CheckView:
    """The check view of two layers in a viewer (GUI thread).

    Parameters
    ----------
    viewer
        The napari viewer.
    on_position
        Called with the new wipe position (0-1) when a drag on the canvas
        moves the boundary (the panel's slider follows it).

    Attributes
    ----------
    layer : napari.layers.Image or None
        The check view layer, while one is shown.
    mode : str or None
        The mode shown (a key of :data:`CHECK_MODES`), None when off.
    position : float
        The wipe boundary, 0-1 of the width.
    """

    def __init__(
        self, viewer: napari.Viewer, on_position: Callable[[float], None] | None = None
    ) -> None:
        self.viewer = viewer
        self.on_position = on_position
        self.layer: Image | None = None
        self.mode: str | None = None
        self.position = 0.5
        self._pair: tuple[Any, Any] | None = None
        self._images: tuple[np.ndarray, np.ndarray] | None = None
        self._key: tuple[Any, ...] | None = None
        self._index: tuple[int, ...] = ()
        self._putting = False
        self._following = False  # connected to the viewer's dims

    @property
    def lost(self) -> bool:
        """Whether the check view layer was removed from the viewer by someone else."""
        return self.layer is not None and not self._putting and self.layer not in self.viewer.layers

    def show(self, first: Image, second: Image, mode: str | None) -> Image | None:
        """Show the check view ``mode`` of ``first`` and ``second`` as moved (None: remove it).

        The view is of the plane the viewer shows: for a volume (or any layer
        of more than two axes), the first layer's slice at the viewer's
        current step (:func:`plane_index`) and the second there; it follows
        the dims slider until the view is removed or :meth:`close` is called.
        The plane is sampled again when it, a layer, its data, its transform
        or its contrast limits changed since the last call. Returns the check
        view layer (None when off).
        """
        if mode is None or mode == "off":
            self.remove()
            return None
        if mode not in CHECK_MODES:
            raise ValueError(f"check view must be one of {', '.join(CHECK_MODES)}, not {mode!r}")
        index = plane_index(first, self.viewer.dims.point)
        key = (*self._state(first, second), index)
        if self._images is None or key != self._key:
            self._images = moved_onto_first(first, second, index)
            self._key, self._index = key, index
        self._pair = (first, second)
        self.mode = mode
        self._follow(True)
        return self._put()

    def refresh(self) -> Image | None:
        """Show the current mode again, the second layer sampled as it is now."""
        if self._pair is None or self.mode is None:
            return None
        self._key = None
        return self.show(*self._pair, self.mode)

    def set_position(self, position: float) -> None:
        """Move the wipe boundary to ``position`` (0-1 of the width)."""
        self.position = min(max(float(position), 0.0), 1.0)
        if self.mode == "wipe" and self._images is not None:
            self._put()

    def remove(self) -> None:
        """Remove the check view layer; the inputs are left as they are."""
        layer, self.layer = self.layer, None
        self.close()
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)

    def close(self) -> None:
        """Stop following the viewer (its dims slider) and forget the layers; a check view
        layer on show stays as it is."""
        self._follow(False)
        self.mode, self._pair, self._images, self._key = None, None, None, None

    # ------------------------------------------------------------- internals
    def _follow(self, on: bool) -> None:
        """Connect to (or disconnect from) the viewer's current dims step."""
        if on == self._following:
            return
        event = self.viewer.dims.events.current_step
        (event.connect if on else event.disconnect)(self._stepped)
        self._following = on

    def _stepped(self, _event: Any = None) -> None:
        """The dims slider moved: show the plane now shown, if it is another one."""
        if self._pair is None or self.mode is None or self._putting:
            return
        first, second = self._pair
        if first not in self.viewer.layers or second not in self.viewer.layers:
            return
        if plane_index(first, self.viewer.dims.point) != self._index:
            self.show(first, second, self.mode)

    @staticmethod
    def _state(first: Any, second: Any) -> tuple[Any, ...]:
        def of(layer: Any) -> tuple[Any, ...]:
            tf = _transforms(layer)
            return (
                id(layer), id(layer.data), tuple(layer.contrast_limits),
                *(np.asarray(v, float).tobytes() for v in tf.values()),
            )  # fmt: skip

        return (*of(first), *of(second))

    def _put(self) -> Image:
        from .layer_output import put_image

        assert self._images is not None and self._pair is not None and self.mode is not None
        a, b = self._images
        image = compose(a, b, self.mode, self.position)
        first, second = self._pair
        rgb = self.mode == "overlay"
        look = {"rgb": True} if rgb else {"rgb": False, "colormap": "gray"}
        metadata = {
            "gifnet_layer": CHECK_TAG, "check_view": self.mode, "first": first.name,
            "second": second.name, "position": self.position,
        }  # fmt: skip
        transforms = _transforms(first)
        if self._index:  # one plane of the first: (1, ..., 1, H, W) placed where it is
            image = image.reshape((1,) * len(self._index) + image.shape)
            transforms["translate"] = _plane_origin(first, self._index)
        kwargs = {**look, **transforms, "contrast_limits": (0.0, 1.0)}
        if self.layer is not None and self.layer not in self.viewer.layers:
            self.layer = None  # the user removed it: put a new one
        name = self.layer.name if self.layer is not None else CHECK_LAYER
        self._putting = True  # a switch to or from RGB replaces the layer
        try:
            layer = put_image(self.viewer, name, image, metadata=metadata,
                              below=self._above(first, second), **kwargs)  # fmt: skip
        finally:
            self._putting = False
        if layer is not self.layer:
            layer.mouse_drag_callbacks.append(self._drag)
            self.layer = layer
        layer.mouse_pan = self.mode != "wipe"  # in a wipe, a drag moves the boundary
        return layer

    def _above(self, *inputs: Any) -> Any:
        """The layer a new check view goes below: the one just above the inputs (None: the
        top), so that layers above them (landmarks) stay in sight."""
        layers = self.viewer.layers
        top = max((layers.index(ly) for ly in inputs if ly in layers), default=len(layers) - 1)
        return layers[top + 1] if top + 1 < len(layers) else None

    def _drag(self, layer: Any, event: Any) -> Any:
        """A drag on the check view moves the wipe's boundary to the pointer."""
        if self.mode != "wipe" or self._images is None:
            return
        width = self._images[0].shape[-1]

        def follow() -> None:
            column = float(layer.world_to_data(event.position)[-1])
            self.set_position((column + 0.5) / width)
            if self.on_position is not None:
                self.on_position(self.position)

        follow()
        yield
        while event.type == "mouse_move":
            follow()
            yield
