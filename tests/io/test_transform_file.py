"""The transform file (io.transform_file): round trip, atomic writing, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_gifnet.io.transform_file import FORMAT, load_transform, save_transform
from napari_gifnet.workflows.landmarks import register_landmarks
from napari_gifnet.workflows.registration import Transform, apply_registration
from registration_cases import case_2d


def test_a_saved_registration_loads_and_moves_the_image_the_same(tmp_path: Path) -> None:
    fixed_image, moving_image, true = case_2d("similarity")
    points = np.array([[20.0, 20.0], [100.0, 30.0], [60.0, 110.0]])
    moved_points = points @ true[:2, :2].T + true[:2, 2]
    result = register_landmarks(points, moved_points, "similarity", fixed=fixed_image,
                                moving=moving_image, moving_spacing=(1.0, 1.0))  # fmt: skip
    path = save_transform(tmp_path / "t.json", result, fixed="ct.tif")
    data = load_transform(path)
    assert data["format"] == FORMAT and data["kind"] == "similarity" and data["ndim"] == 2
    assert data["fixed"] == "ct.tif" and data["report"]["method"] == "landmarks"
    assert data["moving_spacing"] == [1.0, 1.0] and len(data["report"]["residuals"]) == 3
    transform = Transform.load(path)
    assert transform == result.transform
    again = apply_registration(transform, moving_image, fixed_image.shape)
    np.testing.assert_array_equal(again, result.moved)
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]  # no temporary file left
    save_transform(tmp_path / "plain.json", result.transform)
    assert Transform.load(tmp_path / "plain.json") == result.transform


def test_a_wrong_or_corrupt_file_gets_one_message_naming_it(tmp_path: Path) -> None:
    good = save_transform(tmp_path / "good.json", Transform("rigid", np.eye(4)))
    data = json.loads(good.read_text())
    cases = {
        "torn.json": (good.read_text()[:40], "not JSON"),
        "other.json": (json.dumps({**data, "format": "elastix"}), "format is 'elastix'"),
        "future.json": (json.dumps({**data, "version": 99}), "version 99"),
        "kind.json": (json.dumps({**data, "kind": "bspline"}), "kind 'bspline'"),
        "shape.json": (json.dumps({**data, "matrix": [[1, 0], [0, 1]]}), "shape \\(2, 2\\)"),
        "ndim.json": (json.dumps({**data, "ndim": 2}), "ndim 2 does not match"),
        "flat.json": (json.dumps({**data, "matrix": np.zeros((4, 4)).tolist()}), "homogeneous"),
        "list.json": ("[1, 2]", "not a JSON object"),
    }
    for name, (text, reason) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ValueError, match=f"{name} is not a valid napari-gifnet transform "
                                             f"file: .*{reason}"):  # fmt: skip
            load_transform(path)
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="binary.json is not a valid .*UTF-8"):
        load_transform(tmp_path / "binary.json")
    before = good.read_bytes()
    with pytest.raises(ValueError, match="cannot save the transform to .*good.json"):
        save_transform(good, {"kind": "rigid", "matrix": np.zeros((4, 4))})
    assert good.read_bytes() == before  # left as it was


def test_the_unit_of_the_world_coordinates_is_stored_and_read(tmp_path: Path) -> None:
    shift = np.eye(3)
    shift[:2, 2] = (3.0, -2.0)
    transform = Transform("rigid", shift)
    in_um = save_transform(tmp_path / "um.json", transform, unit="micrometer")
    assert json.loads(in_um.read_text())["unit"] == "micrometer"
    assert load_transform(in_um)["unit"] == "micrometer"
    again = save_transform(tmp_path / "again.json", load_transform(in_um))  # kept from a mapping
    assert load_transform(again)["unit"] == "micrometer"
    for unit in (None, "pixel", "px"):  # pixels are stored as null
        path = save_transform(tmp_path / "px.json", transform, unit=unit)
        assert json.loads(path.read_text())["unit"] is None
        assert load_transform(path)["unit"] is None
    old = json.loads(in_um.read_text())
    del old["unit"]  # a file written before the unit was stored: pixels
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert load_transform(tmp_path / "old.json")["unit"] is None
    (tmp_path / "bad.json").write_text(json.dumps({**old, "unit": 5}))
    with pytest.raises(ValueError, match="bad.json is not a valid .*: its unit 5 is not a unit"):
        load_transform(tmp_path / "bad.json")
