"""Registration by mutual information (workflows.registration): known transforms recovered,
multimodal pairs and volumes, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from napari_gifnet.workflows.alignment import _centre, _matrix, estimate_similarity
from napari_gifnet.workflows.registration import (
    RegistrationError,
    Transform,
    apply_registration,
    check_overlap,
    check_transform,
    overlap_fraction,
    register,
)
from registration_cases import (
    FIXED_SPACING_3D,
    MOVING_SPACING_3D,
    camera,
    camera_uint16,
    case_2d,
    case_3d,
    homogeneous,
    mapping_error,
    other_modality,
)


@pytest.mark.parametrize("kind", ["rigid", "similarity", "affine"])
def test_a_multimodal_pair_is_registered_to_half_a_pixel(kind: str) -> None:
    fixed, moving, true = case_2d(kind)
    kept = fixed.copy(), moving.copy()
    result = register(fixed, moving, kind)
    assert mapping_error(true, result.transform.matrix, fixed.shape) < 0.5
    np.testing.assert_array_equal(fixed, kept[0])
    np.testing.assert_array_equal(moving, kept[1])
    report = result.report
    assert report.method == "mattes" and report.metric_after < report.metric_before
    assert report.iterations > 0 and report.converged and 0.5 < report.overlap <= 1.0
    assert result.moved.shape == fixed.shape and result.moved.dtype == moving.dtype
    # the moved image lines up with the fixed one: its mapping undone gives the scene back
    inside = ndimage.binary_erosion(result.moved > moving.min(), iterations=4)
    truth = ndimage.affine_transform(moving, true[:2, :2], offset=true[:2, 2], order=1)
    assert np.abs(result.moved - truth)[inside].mean() < 0.05
    assert report.describe().startswith("registered by mutual information (Mattes) 0.")


def test_phase_correlation_fails_on_the_multimodal_pair() -> None:
    """Why mutual information: the project's phase correlation (its similarity mode, the
    most it can estimate) misses the transform of a pair of different contrast."""
    fixed, moving, true = case_2d("rigid")
    shift, scale, rotation = estimate_similarity(fixed, moving)
    m = _matrix(scale, rotation)  # apply_transform: fixed p -> moving m p + c - m (c + shift)
    c = _centre(fixed.shape)
    found = homogeneous(m, c - m @ (c + shift))
    assert mapping_error(true, found, fixed.shape) > 3.0


def test_a_volume_with_inverted_contrast_and_other_spacing_is_registered_to_a_voxel() -> None:
    fixed, moving, true = case_3d()
    result = register(fixed, moving, "rigid", fixed_spacing=FIXED_SPACING_3D,
                      moving_spacing=MOVING_SPACING_3D)  # fmt: skip
    assert mapping_error(true, result.transform.matrix, fixed.shape, FIXED_SPACING_3D) < 1.0
    assert result.moved.shape == fixed.shape
    assert result.moving_spacing == MOVING_SPACING_3D
    params = result.transform.parameters()
    assert abs(params["angle_deg"] - 11.0) < 1.5 and np.allclose(params["scales"], 1, atol=1e-6)


def test_results_are_reproducible_and_colour_registers_on_its_luma() -> None:
    fixed, moving, _true = case_2d("rigid")
    calls: list[int] = []
    first = register(fixed, moving, "rigid", resample=False, progress=calls.append)
    again = register(fixed, moving, "rigid", resample=False)
    np.testing.assert_array_equal(first.transform.matrix, again.transform.matrix)
    assert calls == list(range(1, first.report.iterations + 1))
    assert first.moved is None
    grey = (np.clip(moving, 0, 1) * 255).astype(np.uint8)
    colour = np.stack([grey] * 3, axis=-1)
    by_colour = register(fixed, colour, "rigid")
    by_grey = register(fixed, grey, "rigid")
    np.testing.assert_allclose(by_colour.transform.matrix, by_grey.transform.matrix, atol=1e-3)
    assert by_colour.moved.shape == (*fixed.shape, 3) and by_colour.moved.dtype == np.uint8

    class Stop(Exception):
        pass

    def cancel(done: int) -> None:
        if done == 3:
            raise Stop("cancelled by the caller")

    with pytest.raises(Stop, match="cancelled by the caller"):  # not SimpleITK's wrapper
        register(fixed, moving, "rigid", resample=False, progress=cancel)


def test_apply_registration_on_a_volume_equals_a_whole_volume_resample() -> None:
    rng = np.random.default_rng(3)
    moving = rng.random((12, 20, 18)).astype(np.float32)
    kept = moving.copy()
    t = np.deg2rad(7)
    linear = 1.05 * np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    transform = Transform("similarity", homogeneous(linear, np.array([1.5, -2.0, 3.0])))
    fs, ms, shape = (1.0, 0.8, 0.8), (2.0, 1.0, 1.0), (20, 24, 22)
    moved = apply_registration(transform, moving, shape, fixed_spacing=fs, moving_spacing=ms)
    a = transform.matrix[:3, :3] * np.asarray(fs)[None] / np.asarray(ms)[:, None]
    off = transform.matrix[:3, 3] / np.asarray(ms)
    whole = ndimage.affine_transform(
        moving.astype(np.float64), a, offset=off, output_shape=shape, order=1, mode="constant",
        cval=float(moving.min()),
    )  # fmt: skip
    np.testing.assert_allclose(moved, whole, atol=1e-5)
    assert moved.dtype == np.float32
    np.testing.assert_array_equal(moving, kept)


def test_transform_parameters_inverse_and_napari_affine() -> None:
    t = np.deg2rad(10)
    linear = 1.1 * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    transform = Transform("similarity", homogeneous(linear, np.array([3.0, -4.0])))
    params = transform.parameters()
    assert params["angle_deg"] == pytest.approx(10) and params["scale"] == pytest.approx(1.1)
    assert params["translation"] == pytest.approx([3.0, -4.0]) and params["shear"] == [0.0]
    np.testing.assert_allclose(transform.inverse().matrix @ transform.matrix, np.eye(3),
                               atol=1e-12)  # fmt: skip
    # the moving layer's pixel q lands where the fixed point p with matrix @ p = q * spacing is
    affine = transform.napari_affine((2.0, 2.0))
    p = np.array([10.0, 20.0, 1.0])
    q = transform.matrix @ p / np.array([2.0, 2.0, 1.0])
    np.testing.assert_allclose(affine @ q, p)
    assert Transform.from_dict(transform.to_dict()) == transform
    assert transform != Transform("affine", transform.matrix)


# -- refusals: each names the input(s) ------------------------------------------------


def test_refusals_of_bad_inputs_name_them() -> None:
    fixed, moving, _ = case_2d("rigid")
    with pytest.raises(RegistrationError, match="ct is constant"):
        register(np.full((64, 64), 7.0), moving, fixed_name="ct")
    bad = moving.copy()
    bad[3, 4] = np.nan
    with pytest.raises(RegistrationError, match=r"mri .*1 non-finite"):
        register(fixed, bad, moving_name="mri")
    with pytest.raises(RegistrationError, match=r"second \(3-D.*first \(2-D"):
        register(fixed, np.zeros((8, 8, 8)))
    with pytest.raises(RegistrationError, match=r"first has shape \(4, 5, 6, 7\)"):
        register(np.zeros((4, 5, 6, 7)), moving)
    with pytest.raises(RegistrationError, match="spacing of second"):
        register(fixed, moving, moving_spacing=(1.0, -2.0))
    with pytest.raises(RegistrationError, match="transform must be one of"):
        register(fixed, moving, "bspline")
    assert issubclass(RegistrationError, ValueError)


def test_images_sharing_no_structure_are_refused() -> None:
    rng = np.random.default_rng(5)
    with pytest.raises(RegistrationError, match=r"noise2 onto noise1 .*share no structure"):
        register(rng.random((64, 64)), rng.random((64, 64)), fixed_name="noise1",
                 moving_name="noise2")  # fmt: skip


def test_collapsing_transforms_and_no_overlap_are_refused() -> None:
    names = ("ct", "pet")
    with pytest.raises(RegistrationError, match=r"pet onto ct gave scales .*0.4"):
        check_transform(Transform("similarity", np.diag([0.4, 0.4, 1.0])), names)
    with pytest.raises(RegistrationError, match=r"pet onto ct gave a shear of 0.2 .*rigid"):
        check_transform(Transform("rigid", homogeneous(np.array([[1, 0.2], [0, 1]]),
                                                       np.zeros(2))), names)  # fmt: skip
    with pytest.raises(RegistrationError, match="shear of 0.8"):
        check_transform(Transform("affine", homogeneous(np.array([[1, 0.8], [0, 1]]),
                                                        np.zeros(2))), names)  # fmt: skip
    with pytest.raises(RegistrationError, match="mirrored"):
        check_transform(Transform("affine", np.diag([1.0, -1.0, 1.0])), names)
    check_transform(Transform("affine", homogeneous(np.array([[1.1, 0.3], [0, 0.9]]),
                                                    np.zeros(2))), names)  # fmt: skip
    far = Transform("rigid", homogeneous(np.eye(2), np.array([500.0, 0.0])))
    assert overlap_fraction(far, (64, 64), (64, 64)) == 0.0
    half = Transform("rigid", homogeneous(np.eye(2), np.array([0.0, 32.0])))
    assert overlap_fraction(half, (64, 64), (64, 64)) == pytest.approx(0.5, abs=0.03)


# -- pairs that are already registered ------------------------------------------------


def _shift_found(result) -> np.ndarray:
    m = result.transform.matrix
    assert np.allclose(m[:-1, :-1], np.eye(m.shape[0] - 1), atol=2e-3)  # no rotation or scale
    return m[:-1, -1]


def test_a_pair_already_registered_stays_registered_for_every_dtype() -> None:
    """The optimiser starts at the answer and keeps it: the same image (float, uint8 and a
    16-bit camera range), a second modality at shift 0 and a 1 px shift of one sensor."""
    cam = camera()
    u16 = camera_uint16()
    pairs = {
        "float": (cam, cam),
        "uint8": ((cam * 255).astype(np.uint8),) * 2,
        "uint16": (u16, u16),
        "uint16 moved by (1, 1) px": (u16, np.roll(u16, (1, 1), axis=(0, 1))),
        "other modality": (cam, other_modality(cam, np.random.default_rng(0))),
    }
    truth = {"uint16 moved by (1, 1) px": (1.0, 1.0)}
    for name, (fixed, moving) in pairs.items():
        result = register(fixed, moving, "rigid", resample=False)
        found = _shift_found(result)
        assert np.abs(found - truth.get(name, (0.0, 0.0))).max() < 0.5, (name, found)
        assert result.report.metric_after <= result.report.metric_before
    sim = register(u16, u16, "similarity", resample=False)
    assert np.abs(_shift_found(sim)).max() < 0.5


def test_the_optimiser_does_not_leave_an_exact_start() -> None:
    """Not only the kept start: the optimiser's own end stays near the identity."""
    u16 = camera_uint16()
    result = register(u16, u16, "rigid", resample=False, initialise="centre")
    assert np.abs(_shift_found(result)).max() < 0.5
    # the optimiser's end, before the better of start and end is kept
    import napari_gifnet.workflows.registration as reg

    ends = []
    optimise = reg._optimise_stages

    def spy(*args, **kwargs):
        final, stop = optimise(*args, **kwargs)
        ends.append(np.asarray(final.GetParameters()))
        return final, stop

    reg._optimise_stages = spy
    try:
        register(u16, u16, "rigid", resample=False, initialise="centre")
    finally:
        reg._optimise_stages = optimise
    angle, *shift = ends[0]
    assert abs(np.degrees(angle)) < 0.1 and np.abs(shift).max() < 0.1


def test_identical_volumes_register_to_the_identity() -> None:
    fixed, _moving, _true = case_3d()
    result = register(fixed, fixed, "rigid", resample=False)
    assert np.abs(_shift_found(result)).max() < 0.5


# -- inputs too thin, overlap ---------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 40), (3, 40), (2, 2), (2, 20, 20), (20, 3, 20)])
def test_images_thinner_than_four_pixels_are_refused_by_name(shape) -> None:
    thin = np.random.default_rng(0).random(shape)
    with pytest.raises(RegistrationError, match=rf"pet has shape \({shape[0]}, .*at least 4 px"):
        register(thin, thin, fixed_name="pet")


def test_check_overlap_refuses_a_transform_that_misses_the_fixed_grid() -> None:
    far = Transform("rigid", homogeneous(np.eye(2), np.array([500.0, 0.0])))
    with pytest.raises(RegistrationError, match=r"mri .* 0 % of ct .*refused"):
        check_overlap(far, (64, 64), (64, 64), names=("ct", "mri"))
    half = Transform("rigid", homogeneous(np.eye(2), np.array([0.0, 32.0])))
    assert check_overlap(half, (64, 64), (64, 32), moving_spacing=2.0) == pytest.approx(
        0.5, abs=0.03
    )


# -- memory and exactness of the resampling -----------------------------------------


def _tilted() -> Transform:
    rot = Rotation.from_euler("XYZ", [9.0, -6.0, 4.0], degrees=True).as_matrix()
    return Transform("affine", homogeneous(rot @ np.diag([1.05, 0.95, 1.0]),
                                           np.array([1.5, -2.0, 3.0])))  # fmt: skip


@pytest.mark.parametrize("order", [1, 3])
def test_a_tilted_volume_resampled_by_slabs_equals_a_whole_volume_resample(order: int) -> None:
    moving = np.random.default_rng(4).integers(0, 60000, (40, 24, 20)).astype(np.uint16)
    fs, ms, shape = (1.0, 1.2, 1.2), (0.7, 1.0, 1.0), (30, 22, 20)
    moved = apply_registration(_tilted(), moving, shape, fixed_spacing=fs, moving_spacing=ms,
                               order=order)  # fmt: skip
    a = _tilted().matrix[:3, :3] * np.asarray(fs)[None] / np.asarray(ms)[:, None]
    off = _tilted().matrix[:3, 3] / np.asarray(ms)
    whole = ndimage.affine_transform(moving.astype(np.float64), a, offset=off,
                                     output_shape=shape, order=order, mode="constant",
                                     cval=float(moving.min()))  # fmt: skip
    expected = np.clip(np.round(whole), 0, 65535)
    assert moved.dtype == np.uint16
    assert np.abs(moved.astype(np.float64) - expected).max() <= (0 if order == 1 else 1)


def test_resampling_and_the_intensity_do_not_copy_the_volume_to_float64() -> None:
    import tracemalloc

    import napari_gifnet.workflows.registration as reg

    volume = np.random.default_rng(6).integers(0, 60000, (64, 128, 128)).astype(np.uint16)
    rot = Rotation.from_euler("XYZ", [1.0, 0.0, 3.0], degrees=True).as_matrix()
    tilted = Transform("rigid", homogeneous(rot, np.array([0.5, -2.0, 3.0])))
    peaks = {}
    for name, call in {
        "resample": lambda: apply_registration(tilted, volume, volume.shape),
        "intensity": lambda: reg._intensity(volume, "ct"),
    }.items():
        tracemalloc.start()
        call()
        peaks[name] = tracemalloc.get_traced_memory()[1] / volume.nbytes
        tracemalloc.stop()
    # the uint16 output plus a float64 slab of a few planes (a float64 copy would be 4 x
    # the volume); the float32 intensity and the values its percentiles sort (2 + 2 x)
    assert peaks["resample"] < 2.0 and peaks["intensity"] < 5.0, peaks


def test_int64_values_beyond_float64_precision_are_kept_exact_or_refused() -> None:
    identity = Transform("rigid", np.eye(3))
    small = np.arange(400, dtype=np.int64).reshape(20, 20) * 1_000_000_007
    np.testing.assert_array_equal(apply_registration(identity, small, (20, 20)), small)
    big = small + (1 << 60)
    with pytest.raises(RegistrationError, match=r"\(int64\) holds values up to .*2\*\*53"):
        apply_registration(identity, big, (20, 20))


def test_the_phase_start_of_a_volume_runs_on_a_reduced_volume() -> None:
    import tracemalloc

    import napari_gifnet.workflows.registration as reg

    rng = np.random.default_rng(1)
    fixed = ndimage.gaussian_filter(rng.random((64, 128, 128)), 3).astype(np.float32)
    moving = np.roll(fixed, (2, -5, 7), axis=(0, 1, 2))
    a, b = reg._intensity(fixed, "ct"), reg._intensity(moving, "mri")
    tracemalloc.start()
    shift = reg._phase_start(a, b, (1.0, 2.0, 2.0))
    peak = tracemalloc.get_traced_memory()[1] / a.nbytes
    tracemalloc.stop()
    np.testing.assert_allclose(shift, [2.0, -10.0, 14.0], atol=0.5)
    assert peak < 4.0  # complex128 FFTs of the whole volume would take 28 x its float32 bytes
