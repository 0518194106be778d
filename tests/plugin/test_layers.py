"""Tests of the Qt-free napari layer logic (napari_gifnet.plugin.layer_fusion, presets).

They use napari's ``ViewerModel`` (no Qt, no OpenGL) and the published
checkpoint on small crops of the reference pairs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.components import ViewerModel

from napari_gifnet.engine.fusion import fuse
from napari_gifnet.methods.presets import PRESETS, get_preset, preset_choices
from napari_gifnet.methods.registry import output_name
from napari_gifnet.plugin.fusion_plan import prepare_fusion
from napari_gifnet.plugin.layer_fusion import fuse_layers, run_fusion
from napari_gifnet.plugin.layer_output import add_fusion_layers, pca_rgb, status_text
from napari_gifnet.util.progress import Cancelled as FusionCancelled

H, W = 64, 96


@pytest.fixture(scope="module")
def medical(reference_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    d = np.load(reference_dir / "official" / "Medical.npz")
    return d["input_a"][:H, :W].copy(), d["input_b"][:H, :W].copy()


@pytest.fixture
def viewer(medical) -> ViewerModel:
    v = ViewerModel()
    v.add_image(medical[0], name="PET")
    v.add_image(medical[1], name="MRI")
    return v


def test_fuse_layers_matches_engine_and_records_provenance(viewer, medical, reference_weights):
    before = [ly.data.copy() for ly in viewer.layers]
    ids = [id(ly.data) for ly in viewer.layers]
    seen: list[tuple[int, int]] = []
    layers = fuse_layers(
        viewer, "PET", "MRI", weights=reference_weights, progress=lambda d, t: seen.append((d, t))
    )
    assert len(layers) == 1 and len(viewer.layers) == 3
    fused = layers[0]
    assert fused.name == "PET + MRI (GIFNet)" == output_name("PET", "MRI")
    assert fused.data.shape == (H, W) and fused.data.dtype == np.float32
    assert fused.colormap.name == "gray"
    expected = fuse(*medical, weights=reference_weights)
    lo, hi = float(expected.image.min()), float(expected.image.max())
    assert tuple(fused.contrast_limits) == pytest.approx((lo, hi))  # its own range
    np.testing.assert_array_equal(fused.data, expected.image)
    meta = fused.metadata
    assert meta["method"] == "GIFNet"
    assert meta["weights_sha256"] == expected.metadata["weights_sha256"]
    assert meta["device"] == "cpu" or meta["device"].startswith(("cuda", "mps"))
    assert (meta["first_layer"], meta["second_layer"]) == ("PET", "MRI")
    assert meta["inputs"]["first"]["name"] == "PET" and meta["inputs"]["second"]["name"] == "MRI"
    assert meta["normalization"] == "auto" and meta["resampled"] is None
    assert meta["elapsed_s"] > 0 and "created" in meta and meta["planes"] == 1
    assert seen and seen[-1][0] == seen[-1][1] and all(b >= a for a, b in seen)
    # inputs untouched
    assert [id(ly.data) for ly in viewer.layers[:2]] == ids
    for ly, old in zip(viewer.layers[:2], before):
        np.testing.assert_array_equal(ly.data, old)


def test_output_takes_first_layers_transforms(viewer, reference_weights):
    pet, mri = viewer.layers["PET"], viewer.layers["MRI"]
    for layer in (pet, mri):
        layer.scale, layer.translate, layer.rotate = (0.5, 0.25), (10.0, -3.0), 30.0
    fused, *_ = fuse_layers(viewer, pet, mri, weights=reference_weights)
    np.testing.assert_allclose(fused.scale, pet.scale)
    np.testing.assert_allclose(fused.translate, pet.translate)
    np.testing.assert_allclose(fused.rotate, pet.rotate)
    np.testing.assert_allclose(fused.affine.affine_matrix, pet.affine.affine_matrix)
    assert fused.metadata["resampled"] is None  # same transforms: no resampling


def test_rerun_replaces_and_keep_previous_keeps_both(viewer, reference_weights):
    first = fuse_layers(viewer, "PET", "MRI", weights=reference_weights)[0]
    again = fuse_layers(viewer, "PET", "MRI", weights=reference_weights)[0]
    assert again is first and len(viewer.layers) == 3
    kept = fuse_layers(viewer, "PET", "MRI", weights=reference_weights, keep_previous=True)[0]
    assert kept is not first and len(viewer.layers) == 4
    assert kept.name.startswith("PET + MRI (GIFNet)") and kept.name != first.name
    np.testing.assert_array_equal(kept.data, first.data)


def test_feature_layers_and_pca_summaries(viewer, medical, reference_weights):
    layers = fuse_layers(viewer, "PET", "MRI", weights=reference_weights, features=True)
    names = [ly.name for ly in layers]
    base = "PET + MRI (GIFNet)"
    assert names == [base] + [
        f"{k} features: {base}" for k in ("shared", "multimodal", "photographic")
    ] + [f"PCA {k} features: {base}" for k in ("shared", "multimodal", "photographic")]
    expected = fuse(*medical, weights=reference_weights, return_features=True)
    for key, stack, pca in zip(("shared", "multimodal", "photographic"), layers[1:4], layers[4:]):
        assert stack.data.shape == (98, H, W) and not stack.visible
        np.testing.assert_array_equal(stack.data, expected.features[key])
        assert stack.metadata["feature"] == key
        assert pca.rgb and not pca.visible and pca.data.shape == (H, W, 3)
        assert pca.data.dtype == np.float32 and 0 <= pca.data.min() and pca.data.max() <= 1
        assert pca.data.std() > 0


def test_feature_layers_go_hidden_below_the_selected_result(viewer, reference_weights):
    viewer.add_image(np.zeros((H, W), np.float32), name="on top before")
    layers = fuse_layers(viewer, "PET", "MRI", weights=reference_weights, features=True)
    fused, features = layers[0], layers[1:]
    order = [ly.name for ly in viewer.layers]
    assert order[:3] == ["PET", "MRI", "on top before"] and order[-1] == fused.name
    assert {ly.name for ly in viewer.layers[3:-1]} == {ly.name for ly in features}
    assert fused.visible and not any(ly.visible for ly in features)
    assert viewer.layers.selection.active is fused and set(viewer.layers.selection) == {fused}
    for ly in features:  # what each is, in the first 20 characters
        head, key = ly.name[:20], ly.metadata["feature"]
        assert key[:10] in head and ("PCA" in head if ly.rgb else "feature" in head)
    # a rerun updates them in place: a feature layer the user showed stays shown
    features[0].visible = True
    again = fuse_layers(viewer, "PET", "MRI", weights=reference_weights, features=True)
    assert [ly.name for ly in viewer.layers] == order and again[1] is features[0]
    assert features[0].visible and viewer.layers.selection.active is fused


def test_feature_layers_are_not_fused_layers(viewer, reference_weights):
    from napari_gifnet.plugin.layer_output import is_fused_layer

    layers = fuse_layers(viewer, "PET", "MRI", weights=reference_weights, features=True)
    assert [is_fused_layer(ly.metadata) for ly in layers] == [True] + [False] * 6
    assert not is_fused_layer(viewer.layers["PET"].metadata)
    assert is_fused_layer({"method": "GIFNet"})  # e.g. a fused layer read back from a file


def test_pca_rgb_finds_the_main_directions():
    rng = np.random.default_rng(1)
    latent = rng.normal(size=(3, 40, 50)) * np.array([5.0, 2.0, 1.0])[:, None, None]
    mixing = np.linalg.qr(rng.normal(size=(8, 8)))[0][:, :3]
    feats = np.einsum("ck,khw->chw", mixing, latent).astype(np.float32)
    rgb = pca_rgb(feats, samples=500)
    assert rgb.shape == (40, 50, 3) and rgb.dtype == np.float32
    assert rgb.min() >= 0 and rgb.max() <= 1
    for i in range(3):
        assert abs(np.corrcoef(rgb[..., i].ravel(), latent[i].ravel())[0, 1]) > 0.95
    np.testing.assert_array_equal(rgb, pca_rgb(feats, samples=500))  # deterministic


def test_stack_is_fused_plane_by_plane(medical, reference_weights, heap_calls, store_runs):
    a, b = medical
    stack_a = np.stack([a, np.flipud(a), a[:, ::-1]])
    stack_b = np.stack([b, np.flipud(b), b[:, ::-1]])
    v = ViewerModel()
    v.add_image(stack_a, name="a", scale=(3.0, 1.0, 1.0))
    v.add_image(stack_b, name="b", scale=(3.0, 1.0, 1.0))
    seen: list[tuple[int, int]] = []
    fused = fuse_layers(
        v, "a", "b", weights=reference_weights, progress=lambda d, t: seen.append((d, t))
    )[0]
    assert fused.data.shape == (3, H, W)
    assert heap_calls.trims == 1 and store_runs == [1]  # one heap and one set of maps
    np.testing.assert_allclose(fused.scale, (3.0, 1.0, 1.0))
    for i in range(3):
        np.testing.assert_array_equal(
            fused.data[i], fuse(stack_a[i], stack_b[i], weights=reference_weights).image
        )
    assert seen[-1][0] == seen[-1][1] and seen[-1][1] % 3 == 0
    assert fused.metadata["planes"] == 3


def test_stack_planes_go_through_the_network_in_batches_where_a_gpu_allows(
    medical, reference_weights, monkeypatch
):
    import napari_gifnet.engine.batch as batch_module

    asked: list[tuple[int, int, int, str]] = []

    def three_at_a_time(height, width, planes, device, free_bytes=None):
        asked.append((height, width, planes, device.type))
        return 3  # as a GPU with room for three planes would say

    monkeypatch.setattr(batch_module, "batch_size", three_at_a_time)
    a, b = medical
    stack_a = np.stack([a, np.flipud(a), a[:, ::-1], a // 2, np.roll(a, 9, axis=1)])
    stack_b = np.stack([b, np.flipud(b), b[:, ::-1], b, np.roll(b, 9, axis=1)])
    v = ViewerModel()
    v.add_image(stack_a, name="a")
    v.add_image(stack_b, name="b")
    seen: list[tuple[int, int]] = []
    fused = fuse_layers(
        v, "a", "b", weights=reference_weights, device="cpu", progress=lambda d, t: seen.append((d, t))
    )[0]
    assert asked == [(H, W, 5, "cpu")]
    assert seen == [(3, 5), (5, 5)]
    monkeypatch.undo()
    alone = fuse_layers(v, "a", "b", weights=reference_weights, device="cpu")[0]
    assert fused.data.shape == alone.data.shape == (5, H, W)
    np.testing.assert_allclose(fused.data, alone.data, atol=2e-5, rtol=0)
    # the layer's one range is kept: the dim plane stays dim
    assert fused.data[3].mean() < fused.data[0].mean()


def test_stack_feature_layers_align_with_the_stack(medical, reference_weights):
    a, b = (x[:32, :48] for x in medical)
    v = ViewerModel()
    v.add_image(np.stack([a, a[::-1]]), name="a", scale=(4.0, 0.5, 0.5), translate=(1, 2, 3))
    v.add_image(np.stack([b, b[::-1]]), name="b", scale=(4.0, 0.5, 0.5), translate=(1, 2, 3))
    fused, shared, *_, pca = fuse_layers(v, "a", "b", weights=reference_weights, features=True)
    assert shared.data.shape == (98, 2, 32, 48)  # channels first: Z aligns with the image's
    np.testing.assert_allclose(shared.scale, (1.0, 4.0, 0.5, 0.5))
    np.testing.assert_allclose(shared.translate, (0.0, 1.0, 2.0, 3.0))
    np.testing.assert_array_equal(
        shared.data[:, 1],
        fuse(a[::-1], b[::-1], weights=reference_weights, return_features=True).features["shared"],
    )
    assert pca.data.shape == (2, 32, 48, 3) and pca.rgb and not pca.visible
    np.testing.assert_allclose(pca.scale, fused.scale)


def test_rgb_layers_are_colour(reference_dir, reference_weights):
    from skimage.io import imread

    pairs = reference_dir / "pairs" / "IVIF"
    a = imread(next(pairs.glob("a_*")))[:H, :W]
    b = imread(next(pairs.glob("b_*")))[:H, :W]
    if b.ndim == 2:
        b = np.stack([b, np.roll(b, 3, axis=1), b // 2], axis=-1)
    v = ViewerModel()
    v.add_image(a, name="ir")
    v.add_image(b, name="vis", rgb=True)
    fused = fuse_layers(v, "ir", "vis", weights=reference_weights)[0]
    assert fused.rgb and fused.data.shape == (H, W, 3)
    np.testing.assert_array_equal(fused.data, fuse(a, b, weights=reference_weights).image)


def _upsample2(x: np.ndarray) -> np.ndarray:
    """Linear x2 upsampling onto pixel centres i / 2, edges extended."""
    for axis in (0, 1):
        x = np.moveaxis(x, axis, 0)
        nxt = np.concatenate([x[1:], x[-1:]])
        out = np.empty((2 * x.shape[0],) + x.shape[1:], x.dtype)
        out[0::2], out[1::2] = x, (x + nxt) / 2
        x = np.moveaxis(out, 0, axis)
    return x


def test_second_layer_is_resampled_onto_first_grid(medical, reference_weights):
    a = (medical[0] / 255).astype(np.float32)
    b_half = (medical[1][::2, ::2] / 255).astype(np.float32)
    v = ViewerModel()
    v.add_image(a, name="MRI 1mm")
    v.add_image(b_half, name="PET 2mm", scale=(2.0, 2.0))
    plan = prepare_fusion(v.layers[0], v.layers[1])
    assert plan.resampling is not None and plan.resampling.overlap == 1.0
    fused = fuse_layers(v, "MRI 1mm", "PET 2mm", weights=reference_weights)[0]
    expected = fuse(a, _upsample2(b_half), weights=reference_weights).image
    np.testing.assert_allclose(fused.data, expected, atol=1e-5)
    res = fused.metadata["resampled"]
    assert res["layer"] == "PET 2mm" and res["overlap"] == 1.0
    assert "resampled" in status_text(run_fusion(plan, weights=reference_weights))


def test_resampling_keeps_dtype_and_fills_outside():
    v = ViewerModel()
    v.add_image(np.zeros((20, 30), np.uint8), name="a")
    v.add_image(np.full((10, 10, 3), 200, np.uint8), name="b", rgb=True, translate=(5.0, 5.0))
    plan = prepare_fusion(v.layers[0], v.layers[1])
    assert 0 < plan.resampling.overlap < 1
    out = plan.resampling.apply(np.asarray(v.layers[1].data), plan.plane_shape)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    assert out[10, 10, 0] == 200 and out[0, 0, 0] == 200  # fill: the plane's minimum


def test_resampling_follows_rotation():
    b = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    v = ViewerModel()
    v.add_image(np.zeros((40, 40), np.float32), name="a")
    v.add_image(b, name="b", rotate=90, translate=(39.0, 0.0))  # covers the same square
    plan = prepare_fusion(v.layers["a"], v.layers["b"])
    assert plan.resampling.overlap == 1.0
    np.testing.assert_allclose(plan.resampling.apply(b, (40, 40)), np.rot90(b), atol=1e-6)


def test_clear_errors(medical):
    a, b = medical
    v = ViewerModel()
    v.add_image(a, name="a")
    v.add_image(b[:50], name="short")
    v.add_image(np.stack([b, b]), name="stack2")
    v.add_image(np.stack([a, a, a]), name="stack3")
    v.add_image(b, name="far", translate=(1000.0, 0.0), scale=(2.0, 2.0))
    v.add_labels(np.zeros((H, W), np.uint8), name="labels")
    with pytest.raises(ValueError, match="differ in size"):
        prepare_fusion(v.layers["a"], v.layers["short"])
    with pytest.raises(ValueError, match="leading"):
        prepare_fusion(v.layers["stack3"], v.layers["stack2"])
    with pytest.raises(ValueError, match="numbers of dimensions"):
        prepare_fusion(v.layers["a"], v.layers["stack2"])
    with pytest.raises(ValueError, match="do not overlap in world space"):
        prepare_fusion(v.layers["a"], v.layers["far"])
    with pytest.raises(TypeError, match="not an image layer"):
        prepare_fusion(v.layers["a"], v.layers["labels"])
    with pytest.raises(ValueError, match="no layer named"):
        fuse_layers(v, "a", "nope")
    v.layers["stack2"].scale = (5.0, 1.0, 1.0)
    v.layers["stack3"].data = np.stack([a, a])
    v.layers["stack3"].axis_labels = ("t", "y", "x")  # a time series: never resampled along T
    with pytest.raises(ValueError, match="leading .*axes"):
        prepare_fusion(v.layers["stack3"], v.layers["stack2"])
    v.layers["stack3"].axis_labels = ("z", "y", "x")  # two volumes: the second resampled in 3-D
    assert prepare_fusion(v.layers["stack3"], v.layers["stack2"]).resamples_volume


def test_an_array_instead_of_a_layer_is_named_by_type_and_shape_not_dumped(medical):
    a, b = medical
    v = ViewerModel()
    v.add_image(a, name="a")
    data = np.arange(64 * 64, dtype=np.float64).reshape(64, 64) + 0.123
    with pytest.raises(TypeError) as info:
        fuse_layers(v, data, data)
    message = str(info.value)
    assert message == (
        "the first layer must be a layer name or an Image layer, got numpy.ndarray of shape "
        "(64, 64) (add an array with viewer.add_image first)"
    )
    assert len(message) < 200 and "0.123" not in message and "[" not in message
    with pytest.raises(TypeError) as info:
        fuse_layers(v, "a", b.tolist())  # no shape: the type alone
    assert str(info.value).startswith(
        "the second layer must be a layer name or an Image layer, got list (add"
    )
    assert len(str(info.value)) < 200
    with pytest.raises(TypeError, match="the second input 'mask' is a Labels, not an image layer"):
        fuse_layers(v, "a", v.add_labels(np.zeros((H, W), np.uint8), name="mask"))


class _Recorder:
    """An array-like that records every read."""

    def __init__(self, arr: np.ndarray) -> None:
        self.arr, self.shape, self.dtype, self.ndim = arr, arr.shape, arr.dtype, arr.ndim
        self.keys: list = []

    def __getitem__(self, key):
        self.keys.append(key)
        return self.arr[key]


def _planes_read(keys: list, n: int) -> set[int]:
    planes: set[int] = set()
    for key in keys:
        first = key[0] if isinstance(key, tuple) else key
        span = list(range(n)[first]) if isinstance(first, slice) else [first]
        assert len(span) <= 1, key  # every read covers at most one plane
        planes.update(span)
    return planes


def test_dask_layer_gives_a_lazy_result_computed_per_plane(medical, reference_weights):
    da = pytest.importorskip("dask.array")
    a, b = medical
    rec = _Recorder(np.stack([b, np.flipud(b), b // 2]))
    lazy = da.from_array(rec, chunks=(1, H, W))
    v = ViewerModel()
    v.add_image(np.stack([a, a, a]), name="a")
    v.add_image(lazy, name="lazy", contrast_limits=(0, 255))
    rec.keys.clear()
    fused = fuse_layers(v, "a", "lazy", weights=reference_weights)[0]
    assert isinstance(fused.data, da.Array) and fused.metadata["lazy"] is True
    assert fused.data.shape == (3, H, W)
    rec.keys.clear()
    plane = np.asarray(fused.data[1])  # what napari does to show plane 1
    assert _planes_read(rec.keys, 3) == {1}  # only that plane was read
    np.testing.assert_allclose(plane, fuse(a, np.flipud(b), weights=reference_weights).image,
                               rtol=0, atol=1e-5)  # fmt: skip


def test_grey_stack_three_pixels_wide_is_not_taken_for_colour(
    medical, reference_weights, monkeypatch
):
    da = pytest.importorskip("dask.array")
    from napari_gifnet.engine import lazy

    real, inputs = lazy.fuse_dask, []

    def spy(a, b, **kwargs):
        inputs.append((a.chunks, b.chunks, kwargs["rgb"]))
        return real(a, b, **kwargs)

    monkeypatch.setattr(lazy, "fuse_dask", spy)
    a, b = (x[:, :3] for x in medical)  # (H, 3) grey planes: the layers say they are not RGB
    stack_a, stack_b = np.stack([a, np.flipud(a), a // 2]), np.stack([b, np.flipud(b), b // 2])
    v = ViewerModel()
    v.add_image(da.from_array(stack_a, chunks=(1, H, 3)), name="a", rgb=False,
                contrast_limits=(0, 255))  # fmt: skip
    v.add_image(stack_b, name="b", rgb=False)  # NumPy: wrapped one chunk per plane
    fused = fuse_layers(v, "a", "b", weights=reference_weights)[0]
    per_plane = ((1, 1, 1), (H,), (3,))
    assert inputs == [(per_plane, per_plane, (False, False))]
    assert fused.metadata["lazy"] is True and not fused.rgb
    assert fused.data.shape == (3, H, 3) and fused.data.chunks[0] == (1, 1, 1)
    np.testing.assert_allclose(
        np.asarray(fused.data[1]), fuse(np.flipud(a), np.flipud(b), weights=reference_weights).image,
        rtol=0, atol=1e-5,
    )  # fmt: skip


def test_dask_layer_with_features_is_fused_plane_by_plane_now(medical, reference_weights):
    da = pytest.importorskip("dask.array")
    a, b = medical
    rec = _Recorder(np.stack([b, np.flipud(b)]))
    v = ViewerModel()
    v.add_image(np.stack([a, a]), name="a")
    v.add_image(da.from_array(rec, chunks=(1, H, W)), name="lazy", contrast_limits=(0, 255))
    rec.keys.clear()
    fused = fuse_layers(v, "a", "lazy", weights=reference_weights, features=True)[0]
    assert isinstance(fused.data, np.ndarray)
    assert _planes_read(rec.keys, 2) == {0, 1}
    np.testing.assert_array_equal(
        fused.data[1], fuse(a, np.flipud(b), weights=reference_weights).image
    )


def test_progress_exception_cancels_and_adds_nothing(viewer, reference_weights):
    def stop(done: int, total: int) -> None:
        raise FusionCancelled

    with pytest.raises(FusionCancelled):
        fuse_layers(viewer, "PET", "MRI", weights=reference_weights, progress=stop)
    assert len(viewer.layers) == 2


def test_add_fusion_layers_replaces_when_shape_kind_changes(viewer, reference_weights):
    out = run_fusion(prepare_fusion(viewer.layers[0], viewer.layers[1]), weights=reference_weights)
    grey = add_fusion_layers(viewer, out)[0]
    out.image = np.repeat(out.image[..., None], 3, axis=-1)  # now colour: cannot update in place
    colour = add_fusion_layers(viewer, out)[0]
    assert colour is not grey and colour.rgb and len(viewer.layers) == 3
    assert viewer.layers.index(colour) == 2


def test_presets():
    assert [k for _, k in preset_choices()] == list(PRESETS)
    assert set(PRESETS) == {"ivif", "medical", "nir", "mfif", "meif", "remote", "custom"}
    assert get_preset("medical").first.startswith("PET") and get_preset("MEDICAL").second == "MRI"
    assert get_preset("Multi-exposure").normalization == "dtype"
    assert (get_preset("ivif").first, get_preset("ivif").second) == ("infrared", "visible")
    assert "panchromatic" in get_preset("remote").hint
    with pytest.raises(KeyError):
        get_preset("nope")


# --------------------------------------------------------------------------- methods
def test_fuse_layers_mean_is_the_average_of_the_normalised_inputs(viewer, medical):
    from napari_gifnet.engine.preprocess import to_luma_unit

    (fused,) = fuse_layers(viewer, "PET", "MRI", method="mean")
    assert fused.name == "PET + MRI (Mean)" == output_name("PET", "MRI", "mean")
    luma_a, _ = to_luma_unit(medical[0], normalization="auto")
    luma_b, _ = to_luma_unit(medical[1], normalization="auto")
    expected = (luma_a.astype(np.float64) + luma_b.astype(np.float64)) / 2
    np.testing.assert_allclose(fused.data, expected, rtol=0, atol=1e-6)
    assert fused.data.dtype == np.float32 and fused.data.shape == (H, W)
    meta = fused.metadata
    assert meta["method"] == "Mean" and meta["device"] == "cpu"
    assert (meta["first_layer"], meta["second_layer"]) == ("PET", "MRI")
    assert "weights_sha256" not in meta


@pytest.mark.parametrize("method", ["max", "laplacian", "DWT", "guided", "mertens"])
def test_baselines_match_fuse_with_and_ignore_gifnet_options(viewer, medical, method):
    from napari_gifnet.methods.classical import fuse_with

    layers = fuse_layers(
        viewer, "PET", "MRI", method=method, weights="/no/such/file.pth", device="cuda:7",
        features=True,
    )  # fmt: skip
    assert len(layers) == 1  # no feature layers for a baseline
    label = {"dwt": "DWT"}.get(method.lower(), method.capitalize())
    assert layers[0].name == f"PET + MRI ({label})" and layers[0].metadata["method"] == label
    np.testing.assert_array_equal(layers[0].data, fuse_with(method, *medical).image)


def test_iter_fusion_method_overrides_the_plan(viewer):
    from napari_gifnet.methods.registry import method_choices

    plan = prepare_fusion(viewer.layers["PET"], viewer.layers["MRI"])
    assert plan.method == "gifnet" and plan.output_name == "PET + MRI (GIFNet)"
    out = run_fusion(plan, method="Laplacian")
    assert out.plan.method == "laplacian" and out.plan.output_name == "PET + MRI (Laplacian)"
    assert out.metadata["method"] == "Laplacian" and out.metadata["planes"] == 1
    assert [k for _, k in method_choices()][:2] == ["gifnet", "mean"]
    with pytest.raises(ValueError, match="unknown fusion method"):
        fuse_layers(viewer, "PET", "MRI", method="median")
    assert len(viewer.layers) == 2


def test_prepare_fusion_names_an_array_by_type_and_shape_not_contents() -> None:
    data = np.full((64, 64), 0.123456, np.float32)
    with pytest.raises(TypeError) as info:
        prepare_fusion(data, data)
    message = str(info.value)
    assert "ndarray of shape (64, 64)" in message and "0.123" not in message
    assert len(message) < 200


def _dim_stack(medical):
    """uint16 Z-stacks whose second plane is the first at half intensity."""
    a, b = (x.astype(np.uint16) * 200 + 100 for x in medical)
    return np.stack([a, a // 2]), np.stack([b, b // 2])


def test_a_stack_is_normalised_with_one_range_per_layer(medical, reference_weights):
    """No brightness flicker: a plane at half intensity comes out darker, not as bright."""
    from napari_gifnet.workflows.planes import stack_range

    stack_a, stack_b = _dim_stack(medical)
    v = ViewerModel()
    v.add_image(stack_a, name="a")
    v.add_image(stack_b, name="b")
    fused = fuse_layers(v, "a", "b", weights=reference_weights)[0]
    meta = fused.metadata
    assert meta["normalization_scope"] == "layer" and meta["normalized_per_plane"] is False
    for key, stack in (("first", stack_a), ("second", stack_b)):
        lo, hi, rule = stack_range(lambda i, s=stack: s[i], 2, stack.dtype, "auto")
        assert meta["layer_normalization"][key]["range"] == [lo, hi] and rule == "percentile"
    unit = lambda x, r: np.clip((x.astype(np.float32) - np.float32(r[0]))  # noqa: E731
                                / np.float32(r[1] - r[0]), 0, 1)  # fmt: skip
    ra, rb = (meta["layer_normalization"][k]["range"] for k in ("first", "second"))
    for i in range(2):
        expected = fuse(unit(stack_a[i], ra), unit(stack_b[i], rb), weights=reference_weights)
        np.testing.assert_array_equal(fused.data[i], expected.image)
    assert fused.data[1].mean() < 0.75 * fused.data[0].mean()
    per_plane = fuse_layers(v, "a", "b", weights=reference_weights, per_plane=True,
                            keep_previous=True)[0]  # fmt: skip
    assert per_plane.metadata["normalization_scope"] == "plane"
    assert per_plane.metadata["normalized_per_plane"] is True
    assert per_plane.data[1].mean() > 0.9 * per_plane.data[0].mean()  # the flicker it avoids


def test_a_lazy_stack_gets_the_same_layer_range(medical, reference_weights):
    da = pytest.importorskip("dask.array")
    stack_a, stack_b = _dim_stack(medical)
    v = ViewerModel()
    v.add_image(stack_a, name="a")
    v.add_image(da.from_array(stack_b, chunks=(1, H, W)), name="b")
    eager = fuse_layers(v, "a", "b", weights=reference_weights, keep_previous=True)
    lazy_layer = eager[0]
    assert lazy_layer.metadata["lazy"] is True
    assert lazy_layer.metadata["normalization_scope"] == "layer"
    v2 = ViewerModel()
    v2.add_image(stack_a, name="a")
    v2.add_image(stack_b, name="b")
    now = fuse_layers(v2, "a", "b", weights=reference_weights)[0]
    np.testing.assert_allclose(np.asarray(lazy_layer.data), now.data, rtol=0, atol=1e-5)


def test_fuse_layers_aligns_the_second_layer_onto_the_first(medical, reference_weights):
    from scipy import ndimage
    from skimage import data

    from napari_gifnet.workflows.pair_alignment import align_pair

    a = data.camera()[160:288, 160:288]
    b = np.clip(np.rint(ndimage.shift(a.astype(float), (2.0, -3.0), order=3, mode="nearest")),
                0, 255).astype(np.uint8)  # fmt: skip
    v = ViewerModel()
    v.add_image(a, name="near")
    v.add_image(b, name="far")
    fused = fuse_layers(v, "near", "far", weights=reference_weights, align="translation")[0]
    (entry,) = fused.metadata["alignment"]
    assert entry["mode"] == "translation" and np.allclose(entry["shift"], (-2.0, 3.0), atol=0.2)
    moved, _ = align_pair(a, b, "translation")
    np.testing.assert_array_equal(fused.data, fuse(a, moved, weights=reference_weights).image)
    with pytest.raises(ValueError, match="'sideways'"):
        fuse_layers(v, "near", "far", weights=reference_weights, align="sideways")


@pytest.mark.parametrize("method", ["gifnet", "mean"])
def test_empty_stacks_are_refused_by_name_and_shape_before_any_work(method: str) -> None:
    v = ViewerModel()
    for name in ("no planes A", "no planes B"):  # napari cannot find a range in no data
        v.add_image(np.zeros((0, 16, 24), np.float32), name=name, contrast_limits=(0, 1))
    with pytest.raises(ValueError) as info:
        fuse_layers(v, "no planes A", "no planes B", method=method, weights="never-read.pth")
    message = str(info.value)
    assert "layer 'no planes A' has shape (0, 16, 24): axis 0 has length 0" in message
    assert "zero-size" not in message and len(v.layers) == 2
