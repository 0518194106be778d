"""Tests of napari_gifnet.workflows.enhancement (single-image enhancement)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_gifnet.metrics.fusion import fusion_metrics
from napari_gifnet.workflows.enhancement import enhance


@pytest.fixture(scope="module")
def image(reference_dir: Path) -> np.ndarray:
    with np.load(reference_dir / "official" / "Medical.npz") as data:
        return data["input_b"][64:160, 64:160].copy()


def test_self_variant_is_the_image_fused_with_itself(image, reference_weights):
    from napari_gifnet.engine.fusion import fuse

    r = enhance(image, weights=reference_weights, device="cpu")
    direct = fuse(image, image, weights=reference_weights, device="cpu")
    np.testing.assert_array_equal(r.luma, direct.luma)
    assert r.metadata["task"] == "single-image enhancement" and r.metadata["variant"] == "self"
    before = fusion_metrics(image, image, image, metrics=["AG", "EI"])
    after = fusion_metrics(r.luma, image, image, metrics=["AG", "EI"])
    assert after["AG"] > before["AG"] and after["EI"] > before["EI"]  # sharper, as reported


def test_exposure_variant_fuses_a_brightened_copy(image):
    r = enhance(image, variant="exposure", gamma=0.5, method="mean")
    x = image / 255.0
    np.testing.assert_allclose(r.luma, (np.sqrt(x) + x) / 2, atol=1e-5)
    assert r.metadata["gamma"] == 0.5


def test_rgb_stays_rgb_and_input_is_untouched(image):
    rgb = np.repeat(image[..., None], 3, axis=-1)
    rgb.setflags(write=False)
    r = enhance(rgb, method="laplacian")
    assert r.image.shape == rgb.shape


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"variant": "magic"}, "unknown enhancement variant"),
     ({"variant": "exposure", "gamma": 2.0}, "gamma"),
     ({"method": "nope"}, "unknown fusion method")],
)
def test_bad_options(image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        enhance(image, **{"method": "mean", **kwargs})
