"""Sample data: offline generators, published downloads (served locally) and napari."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_gifnet.data import multispectral
from napari_gifnet.data import published as published_samples
from napari_gifnet.data import synthetic as samples
from napari_gifnet.plugin import sample_data as _sample_data

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "multifocus": ["near focus", "far focus", "all-in-focus truth"],
    "focus_stack": ["focus stack", "all-in-focus truth"],
    "medical": ["CT-like", "MRI-like"],
    "exposure": ["over-exposed", "under-exposed", "reference exposure"],
    "fluorescence": ["nuclei", "membranes"],
    "pansharpening": ["multispectral", "panchromatic", "multispectral truth"],
}
PUBLISHED_NAMES = {
    "published_ivif": ["infrared", "visible"],
    "published_medical": ["PET", "MRI"],
    "published_mfif": ["near focus", "far focus"],
    "published_meif": ["over-exposed", "under-exposed"],
    "published_nir": ["near-infrared", "visible"],
    "published_remote": [*(f"multispectral band {i}" for i in range(1, 5)), "panchromatic"],
}


@functools.cache
def _sample(key: str) -> samples.Sample:
    return samples.SAMPLES[key]()


def _sharpness(image: np.ndarray, mask: np.ndarray) -> float:
    grey = image.astype(np.float64)
    grey = grey.mean(axis=-1) if grey.ndim == 3 else grey
    return float(ndi.laplace(grey)[mask].var())


# ------------------------------------------------------------------ offline
def test_keys_match_the_manifest() -> None:
    import npe2

    manifest = npe2.PluginManifest.from_file(ROOT / "napari.yaml")
    keys = {s.key for s in manifest.contributions.sample_data}
    assert keys == set(samples.SAMPLES) | set(published_samples.PUBLISHED)
    assert set(EXPECTED) == set(samples.SAMPLES)
    assert set(PUBLISHED_NAMES) == set(published_samples.PUBLISHED)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_offline_sample_layers(key: str) -> None:
    sample = _sample(key)
    assert sample.key == key and sample.names == EXPECTED[key]
    roles = []
    for name, data, kwargs in sample.layers:
        meta = kwargs["metadata"]
        assert meta["sample"] == key and meta["recipe"] and meta["source"]
        roles.append(meta["role"])
        assert max(data.shape[-3 if kwargs.get("rgb") else -2:]) <= 512
        assert data.dtype == (np.uint16 if key == "fluorescence" else np.uint8)
        assert kwargs.get("visible", True) == (meta["role"] != "truth"), name
        assert kwargs.get("rgb", False) == (data.ndim == 3 and data.shape[-1] == 3)
        json.dumps(meta)  # plain JSON types only
    assert roles[0] in ("first input", "input stack")
    if roles[0] == "first input":
        assert roles[1] == "second input"
    extents = {
        tuple(np.multiply(d.shape[-3:-1] if k.get("rgb") else d.shape[-2:],
                          k.get("scale", (1.0, 1.0))[-2:]))
        for _, d, k in sample.layers
    }
    assert len(extents) == 1  # registered: every layer covers the same world extent


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_offline_samples_are_deterministic(key: str) -> None:
    again = samples.SAMPLES[key]()
    for (name, a, ka), (_, b, kb) in zip(_sample(key).layers, again.layers, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert ka["metadata"] == kb["metadata"]


def test_multifocus_near_sharp_where_near_and_far_sharp_where_far() -> None:
    sample = _sample("multifocus")
    nearness = sample.extras["nearness"]
    near_region, far_region = nearness > 0.7, nearness < 0.3
    assert near_region.mean() > 0.1 and far_region.mean() > 0.1
    near, far = sample.data("near focus"), sample.data("far focus")
    truth = sample.data("all-in-focus truth")
    assert _sharpness(near, near_region) > 5 * _sharpness(far, near_region)
    assert _sharpness(far, far_region) > 5 * _sharpness(near, far_region)
    for image in (near, far):
        assert not np.array_equal(image, truth)
        assert np.abs(image.astype(int) - truth).mean() > 1.0
    # the truth is at least as sharp as either input everywhere
    for region in (near_region, far_region):
        assert _sharpness(truth, region) >= max(_sharpness(near, region), _sharpness(far, region))


def test_focus_stack_sweeps_focus_from_far_to_near() -> None:
    sample = _sample("focus_stack")
    stack, truth = sample.data("focus stack"), sample.data("all-in-focus truth")
    nearness = sample.extras["nearness"]
    assert stack.shape == (5, *truth.shape) and stack.dtype == np.uint8
    assert np.all(np.diff(sample.extras["focus"]) > 0)
    near = [_sharpness(p, nearness > 0.7) for p in stack]
    far = [_sharpness(p, nearness < 0.3) for p in stack]
    assert near[-1] > 5 * near[0] and far[0] > 5 * far[-1]
    assert int(np.argmax(near)) >= 3 and int(np.argmax(far)) <= 1
    assert all(not np.array_equal(p, truth) for p in stack)


def test_small_size_and_bad_arguments() -> None:
    assert max(samples.multifocus_pair(size=128).data("near focus").shape[:2]) == 128
    assert samples.medical_pair(size=64).data("CT-like").shape == (64, 64)
    assert samples.focus_stack(size=96, planes=3).data("focus stack").shape[0] == 3
    with pytest.raises(ValueError, match="size"):
        samples.exposure_pair(size=8)
    with pytest.raises(ValueError, match="planes"):
        samples.focus_stack(planes=1)


def test_medical_pair_same_anatomy_different_contrast() -> None:
    sample = _sample("medical")
    ct = sample.data("CT-like").astype(np.float64)
    mri = sample.data("MRI-like").astype(np.float64)
    assert ct.shape == mri.shape == (256, 256)
    # same structures: their edges coincide ...
    edges_ct = ndi.gaussian_gradient_magnitude(ct, 1.5)
    edges_mri = ndi.gaussian_gradient_magnitude(mri, 1.5)
    assert np.corrcoef(edges_ct.ravel(), edges_mri.ravel())[0, 1] > 0.3
    # ... but the tissue contrasts differ: bone bright in CT, dark in MRI
    intensity_corr = np.corrcoef(ct.ravel(), mri.ravel())[0, 1]
    assert 0.1 < intensity_corr < 0.9
    bone = ct > 230
    assert bone.mean() > 0.01
    assert mri[bone].mean() < 0.5 * mri[ct > 60].mean()
    # a smooth bias field: the left and right halves of the brain differ in MRI
    brain = (ct > 80) & (ct < 110)
    left, right = brain.copy(), brain.copy()
    left[:, 128:], right[:, :128] = False, False
    assert abs(mri[left].mean() - mri[right].mean()) > 5
    assert abs(ct[left].mean() - ct[right].mean()) < 3


def test_exposure_pair() -> None:
    sample = _sample("exposure")
    over = sample.data("over-exposed")
    under = sample.data("under-exposed")
    truth = sample.data("reference exposure")
    assert over.mean() > truth.mean() > under.mean()
    assert (over == 255).mean() > 0.05  # clipped highlights
    assert (under == 255).mean() < 0.001 and under.max() < 200
    assert not np.array_equal(over, truth) and not np.array_equal(under, truth)


def test_fluorescence_pair_is_12_bit_and_channels_differ() -> None:
    sample = _sample("fluorescence")
    nuclei, membranes = sample.data("nuclei"), sample.data("membranes")
    labels = sample.extras["labels"]
    for image in (nuclei, membranes):
        assert image.dtype == np.uint16 and image.max() <= 4095 and image.max() > 1000
        assert image.min() > 0  # camera offset
    from skimage.segmentation import find_boundaries

    cell_edges = find_boundaries(labels, mode="inner") & (labels > 0)
    centres = (labels > 0) & (ndi.distance_transform_edt(~cell_edges) > 15)
    assert labels.max() >= 20 and centres.mean() > 0.05
    assert nuclei[centres].mean() > 2 * membranes[centres].mean()
    assert membranes[cell_edges].mean() > 2 * nuclei[cell_edges].mean()


def _psnr(image: np.ndarray, truth: np.ndarray) -> float:
    error = np.mean((image.astype(np.float64) - truth.astype(np.float64)) ** 2)
    return float(10.0 * np.log10(255.0**2 / error))


def test_pansharpening_sample_follows_walds_protocol() -> None:
    sample = multispectral.pansharpening_sample(size=128)
    ms, pan, truth = (sample.data(n) for n in EXPECTED["pansharpening"])
    assert ms.shape == (4, 32, 32) and pan.shape == (128, 128) and truth.shape == (4, 128, 128)
    assert all(a.dtype == np.uint8 for a in (ms, pan, truth))
    kwargs = dict((name, k) for name, _, k in sample.layers)
    assert kwargs["multispectral"]["scale"] == (1.0, 4.0, 4.0)
    # napari puts pixel j at translate + 4 j: the centre of the 4 x 4 block it covers
    assert kwargs["multispectral"]["translate"] == (0.0, 1.5, 1.5)
    assert kwargs["multispectral"]["metadata"]["bands"] == ["red", "green", "blue", "NIR-like"]
    truth_f = truth.astype(np.float64)
    # the panchromatic image is the stated weighted sum of the true bands (up to rounding)
    weights = kwargs["panchromatic"]["metadata"]["pan_weights"]
    assert np.abs(np.tensordot(weights, truth_f, axes=1) - pan).max() <= 1.0
    # the coarse sensor keeps each band's mean, and its pixels are near the block means
    blocks = truth_f.reshape(4, 32, 4, 32, 4).mean(axis=(2, 4))
    np.testing.assert_allclose(ms.mean(axis=(1, 2)), truth_f.mean(axis=(1, 2)), atol=1.0)
    assert np.abs(ms - blocks).mean() < 8.0
    # ... but is blurred: less high-frequency energy than the plain block means
    assert ndi.laplace(ms.astype(np.float64)).var() < 0.8 * ndi.laplace(blocks).var()
    # the NIR-like band is not one of the colour bands
    assert all(np.abs(truth_f[3] - truth_f[i]).mean() > 5.0 for i in range(3))


def test_pansharpening_sample_pansharpens_better_than_upsampling() -> None:
    from skimage.transform import resize

    from napari_gifnet.workflows.pansharpening import pansharpen

    sample = multispectral.pansharpening_sample(size=256)
    ms, pan, truth = (sample.data(n) for n in EXPECTED["pansharpening"])
    layer = sample.layers[0][2]
    # as the Pansharpen widget calls it: with the layers' scales and translates
    result = pansharpen(ms, pan, band_axis=0, ms_scale=layer["scale"][1:], pan_scale=(1.0, 1.0),
                        ms_translate=layer["translate"][1:])
    cubic = np.stack([resize(b.astype(np.float64), pan.shape, order=3) for b in ms])
    upsampled = np.rint(np.clip(cubic, 0, 255))
    assert result.image.shape == truth.shape
    sharpened, plain = _psnr(result.image, truth), _psnr(upsampled, truth)
    assert sharpened > plain + 6.0, (sharpened, plain)
    for band in range(4):
        assert _psnr(result.image[band], truth[band]) > _psnr(upsampled[band], truth[band])
    # the translate is the one that makes the grids coincide: without scales
    # (extents aligned) the result is the same, with translate 0 it is worse
    same = pansharpen(ms, pan, band_axis=0)
    np.testing.assert_array_equal(result.image, same.image)
    shifted = pansharpen(ms, pan, band_axis=0, ms_scale=(4.0, 4.0), pan_scale=(1.0, 1.0))
    assert _psnr(shifted.image, truth) < sharpened - 1.0


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_napari_functions_return_layer_data(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    function = {"multifocus": "multifocus_pair", "focus_stack": "focus_stack",
                "medical": "medical_pair", "exposure": "exposure_pair",
                "fluorescence": "fluorescence_pair",
                "pansharpening": "pansharpening_sample"}[key]
    monkeypatch.setattr(samples, function, lambda: _sample(key))
    layers = getattr(_sample_data, function)()
    assert [kwargs["name"] for _, kwargs, _ in layers] == EXPECTED[key]
    assert all(kind == "image" and isinstance(d, np.ndarray) for d, _, kind in layers)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_open_offline_sample_in_napari_model(key: str, gifnet_plugin: str) -> None:
    """Through npe2 and napari's viewer model (no window, no OpenGL needed)."""
    from napari.components import ViewerModel

    viewer = ViewerModel()
    viewer.open_sample(gifnet_plugin, key)
    assert [layer.name for layer in viewer.layers] == EXPECTED[key]
    for layer, (_, data, kwargs) in zip(viewer.layers, _sample(key).layers, strict=True):
        assert layer.visible == kwargs.get("visible", True)
        assert layer.rgb == kwargs.get("rgb", False)
        assert layer.metadata["sample"] == key
        np.testing.assert_array_equal(np.asarray(layer.data), data)
        assert tuple(layer.scale) == tuple(kwargs.get("scale", (1.0,) * layer.ndim))
        assert tuple(layer.translate) == tuple(kwargs.get("translate", (0.0,) * layer.ndim))


def test_pansharpening_layers_cover_the_same_area_in_napari(gifnet_plugin: str) -> None:
    """napari draws the coarse bands exactly over the panchromatic pixels they were made from."""
    from napari.components import ViewerModel

    viewer = ViewerModel()
    viewer.open_sample(gifnet_plugin, "pansharpening")
    corners = {}
    for layer in viewer.layers:  # extent.world spans pixel centres: widen by half a pixel
        half = np.asarray(layer.scale[-2:]) / 2
        world = layer.extent.world[:, -2:]
        corners[layer.name] = (tuple(world[0] - half), tuple(world[1] + half))
    assert corners["multispectral"] == corners["panchromatic"] == corners["multispectral truth"]
    assert corners["panchromatic"] == ((-0.5, -0.5), (511.5, 511.5))
    assert viewer.layers["multispectral"].data.shape == (4, 128, 128)
    assert not viewer.layers["multispectral truth"].visible


@functools.cache
def _opengl_missing() -> str:
    """Why a napari window cannot draw here ('' when it can)."""
    from qtpy.QtGui import QOpenGLContext
    from qtpy.QtWidgets import QApplication

    _app = QApplication.instance() or QApplication([])
    if not QOpenGLContext().create():
        return "no OpenGL context on this Qt platform (run under xvfb-run with QT_QPA_PLATFORM=xcb)"
    return ""


@pytest.fixture
def napari_window(qapp, request: pytest.FixtureRequest):
    """``make_napari_viewer``, skipped where Qt has no OpenGL (offscreen platform)."""
    reason = _opengl_missing()
    if reason:
        pytest.skip(reason)
    return request.getfixturevalue("make_napari_viewer")


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_open_offline_sample_in_napari_window(key: str, napari_window, gifnet_plugin: str) -> None:
    viewer = napari_window()
    viewer.open_sample(gifnet_plugin, key)
    assert [layer.name for layer in viewer.layers] == EXPECTED[key]
    assert [layer.visible for layer in viewer.layers] == [
        kwargs.get("visible", True) for _, _, kwargs in _sample(key).layers
    ]
    assert [tuple(layer.scale) for layer in viewer.layers] == [
        tuple(kwargs.get("scale", (1.0,) * layer.ndim))
        for layer, (_, _, kwargs) in zip(viewer.layers, _sample(key).layers, strict=True)
    ]


# ---------------------------------------------------------------- published
def _reference_files(reference_dir: Path) -> dict[str, Path]:
    files = [p for p in (reference_dir / "pairs").rglob("*") if p.is_file()]
    return {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in files}


def test_pins_match_the_published_files(reference_dir: Path) -> None:
    by_hash = _reference_files(reference_dir)
    paths = set()
    for sample in published_samples.PUBLISHED.values():
        for entry in sample.files:
            assert entry.sha256 in by_hash, (sample.key, entry.name)
            assert by_hash[entry.sha256].stat().st_size == entry.size
            assert by_hash[entry.sha256].parent.name == sample.task
            paths.add(entry.path)
    assert len(paths) == sum(len(s.files) for s in published_samples.PUBLISHED.values())


class _Server:
    """A local mirror of the published files, counting the requests it answers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


#: Where each reference file lives in the published repository (AWCXV/GIFNet, branch
#: main), written out by hand from the table "Where each file lives in the published
#: repository" of ../shared/reference/README.md (checked against the repository's
#: tree), independently of the paths in the code, so that a wrong path is a 404.
UPSTREAM = {
    "weights/gifnet-official.pth": "model/Final.model",
    "pairs/IVIF/a_infrared.jpg": "images/IVIF/ir/1.jpg",
    "pairs/IVIF/b_visible.jpg": "images/IVIF/vis/1.jpg",
    "pairs/MFIF/a_near_focus.jpg": "images/MFIF/ir/1.jpg",
    "pairs/MFIF/b_far_focus.jpg": "images/MFIF/vis/1.jpg",
    "pairs/MEIF/a_over_exposed.jpg": "images/MEIF/ir/1.jpg",
    "pairs/MEIF/b_under_exposed.jpg": "images/MEIF/vis/1.jpg",
    "pairs/Medical/a_pet.png": "images/Medical/pet/1.png",
    "pairs/Medical/b_mri.png": "images/Medical/mri/1.png",
    "pairs/NIR-VIS/a_nir.jpg": "images/NIR-VIS/nir/1.jpg",
    "pairs/NIR-VIS/b_visible.jpg": "images/NIR-VIS/vis/1.jpg",
    **{f"pairs/Remote/a_ms_band{i}.tif": f"images/Remote/MS_band{i}/1.tif" for i in range(1, 5)},
    "pairs/Remote/b_pan.tif": "images/Remote/PAN/1.tif",
    "pairs/Remote/ms_4band.tif": "images/Remote/MS/1.tif",
}


def _upstream_tree(reference_dir: Path, root: Path) -> Path:
    """A folder laid out exactly like the published repository (the files of UPSTREAM)."""
    for here, there in UPSTREAM.items():
        target = root / there
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(reference_dir / here, target)
    return root


@pytest.fixture
def mirror(
    reference_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[_Server]:
    """Serve the reference files laid out as upstream, with an empty cache."""
    server = _Server(_upstream_tree(reference_dir, tmp_path / "mirror"))
    monkeypatch.setenv("NAPARI_GIFNET_SAMPLES_URL", server.url)
    monkeypatch.setenv("NAPARI_GIFNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield server
    server.close()


@pytest.mark.parametrize("key", sorted(PUBLISHED_NAMES))
def test_published_sample_downloads_and_opens(key: str, mirror: _Server,
                                              reference_dir: Path) -> None:
    sample = published_samples.load_published(key)
    assert sample.names == PUBLISHED_NAMES[key]
    index = json.loads((reference_dir / "official" / "index.json").read_text())
    task = published_samples.PUBLISHED[key].task
    case = next(c for c in index.values() if c["file_a"].split("/")[1] == task)
    for (_, data, kwargs), entry in zip(sample.layers, published_samples.PUBLISHED[key].files, strict=True):
        meta = kwargs["metadata"]
        assert data.dtype == np.uint8 and data.shape[:2] == (case["height"], case["width"])
        assert meta["url"] == mirror.url + entry.path and meta["sha256"] == entry.sha256
        assert meta["role"] in ("first input", "second input") and meta["sample"] == key
        assert kwargs["rgb"] == (data.ndim == 3)
        cached = published_samples._cache_path(published_samples.PUBLISHED[key], entry)
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == entry.sha256
    roles = [k["metadata"]["role"] for _, _, k in sample.layers]
    assert roles[-1] == "second input" and set(roles[:-1]) == {"first input"}
    assert len(mirror.requests) == len(sample.layers)


def test_published_layer_kinds(mirror: _Server) -> None:
    ivif = published_samples.load_published("published_ivif")
    assert ivif.data("infrared").ndim == 2  # a grey image stored as RGB: one channel kept
    assert ivif.data("visible").shape[-1] == 3
    medical = published_samples.load_published("published_medical")
    assert medical.data("PET").shape == (256, 256, 3) and medical.data("MRI").shape == (256, 256)


def test_cache_is_reused_without_a_request(mirror: _Server) -> None:
    first = published_samples.load_published("published_medical")
    assert len(mirror.requests) == 2
    second = published_samples.load_published("published_medical")
    assert len(mirror.requests) == 2  # no second request
    for (_, a, _), (_, b, _) in zip(first.layers, second.layers, strict=True):
        np.testing.assert_array_equal(a, b)


def test_corrupt_download_is_rejected_and_not_cached(mirror: _Server) -> None:
    entry = published_samples.PUBLISHED["published_medical"].files[1]
    (mirror.root / entry.path).write_bytes(b"not the published MRI")
    with pytest.raises(published_samples.SampleDownloadError) as info:
        published_samples.load_published("published_medical")
    message = str(info.value)
    assert "sha256" in message and mirror.url + entry.path in message and entry.sha256 in message
    assert isinstance(info.value, RuntimeError)
    folder = published_samples.samples_cache_dir() / "Medical"
    assert [p.name for p in folder.iterdir()] == ["pet_1.png"]  # the good file only


def test_foreign_cached_file_is_moved_aside_not_deleted(mirror: _Server) -> None:
    published_samples.load_published("published_mfif")
    cached = sorted((published_samples.samples_cache_dir() / "MFIF").iterdir())
    cached[0].write_bytes(b"not the published bytes")
    with pytest.warns(UserWarning, match="moved to .*foreign-"):
        published_samples.load_published("published_mfif")
    assert len(mirror.requests) == 3
    entry = published_samples.PUBLISHED["published_mfif"].files
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in cached}
    assert digests == {e.sha256 for e in entry}
    foreign = hashlib.sha256(b"not the published bytes").hexdigest()[:12]
    aside = cached[0].with_name(f"{cached[0].name}.foreign-{foreign}")
    assert aside.read_bytes() == b"not the published bytes"


def test_foreign_cached_file_is_kept_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{closed.server_address[1]}/base"
    closed.server_close()  # nothing listens there now
    monkeypatch.setenv("NAPARI_GIFNET_SAMPLES_URL", url)
    monkeypatch.setenv("NAPARI_GIFNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    mine = tmp_path / "cache" / "samples" / "NIR-VIS" / "nir_1.jpg"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own picture")
    with pytest.raises(published_samples.SampleDownloadError, match="left as it is"):
        _sample_data.published_nir()
    assert mine.read_bytes() == b"my own picture"
    assert sorted(p.name for p in mine.parent.iterdir()) == ["nir_1.jpg"]


def test_offline_error_names_file_url_and_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{closed.server_address[1]}/base"
    closed.server_close()  # nothing listens there now
    monkeypatch.setenv("NAPARI_GIFNET_SAMPLES_URL", url)
    monkeypatch.setenv("NAPARI_GIFNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with pytest.raises(published_samples.SampleDownloadError) as info:
        _sample_data.published_nir()
    message = str(info.value)
    entry = published_samples.PUBLISHED["published_nir"].files[0]
    assert "'near-infrared'" in message and "published_nir" in message
    assert url + "/" + entry.path in message
    assert published_samples.OFFICIAL_BASE_URL + entry.path in message
    assert str(tmp_path / "cache" / "samples" / "NIR-VIS" / "nir_1.jpg") in message
    assert "NAPARI_GIFNET_SAMPLES_URL" in message
    assert not (tmp_path / "cache" / "samples" / "NIR-VIS" / "nir_1.jpg").exists()


def test_default_base_url_is_the_gifnet_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAPARI_GIFNET_SAMPLES_URL", raising=False)
    assert published_samples.samples_base_url() == "https://github.com/AWCXV/GIFNet/raw/main/"
    monkeypatch.setenv("NAPARI_GIFNET_SAMPLES_URL", "https://mirror.example/gifnet")
    assert published_samples.samples_base_url() == "https://mirror.example/gifnet/"
    with pytest.raises(KeyError, match="published_"):
        published_samples.load_published("nope")


def test_open_published_sample_in_napari(mirror: _Server, gifnet_plugin: str) -> None:
    from napari.components import ViewerModel

    viewer = ViewerModel()
    viewer.open_sample(gifnet_plugin, "published_remote")
    assert [layer.name for layer in viewer.layers] == PUBLISHED_NAMES["published_remote"]
    assert [layer.visible for layer in viewer.layers] == [True, False, False, False, True]
    assert viewer.layers["panchromatic"].metadata["sha256"] == (
        published_samples.PUBLISHED["published_remote"].files[-1].sha256
    )


def test_missing_file_on_the_mirror(mirror: _Server) -> None:
    entry = published_samples.PUBLISHED["published_meif"].files[0]
    (mirror.root / entry.path).unlink()
    with pytest.raises(published_samples.SampleDownloadError, match="404") as info:
        _sample_data.published_meif()
    assert "'over-exposed'" in str(info.value) and entry.path in str(info.value)


def test_the_whole_download_table_resolves_on_an_upstream_shaped_server(
    mirror: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every sample file and the checkpoint, by the code's own paths, from a server laid
    out like the published repository: a wrong path is a 404 and fails here."""
    from napari_gifnet.model import weights

    base = published_samples.OFFICIAL_BASE_URL
    assert weights.OFFICIAL_URL.startswith(base)
    monkeypatch.setenv(weights.URL_ENV, mirror.url + weights.OFFICIAL_URL[len(base):])
    monkeypatch.delenv(weights.WEIGHTS_ENV, raising=False)
    info = weights.resolve_weights()
    assert info.source == "download" and info.sha256 == weights.OFFICIAL_SHA256
    for key in published_samples.PUBLISHED:
        published_samples.load_published(key)
    assert not [r for r in mirror.requests if r.lstrip("/") not in UPSTREAM.values()]
    assert len(mirror.requests) == 1 + sum(len(s.files) for s in published_samples.PUBLISHED.values())
