"""NeRF-synthetic / Blender: OpenGL camera→world poses in, the design's OpenCV world→camera out."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recon.data import detect, load
from recon.data.formats import blender, nds, ngp
from recon.data.images import write_rgba
from recon.data.paths import allow_outside
from recon.data.scene import View
from recon.errors import DatasetError
from render.camera import Camera

BBOX = np.array([[-0.5, -0.8, -0.3], [0.7, 0.4, 0.9]])


def blender_views(views: list[View], fy_scale: float = 1.0) -> list[View]:
    """The known views with cameras Blender can express: one field of view, centred principal point.

    Only K changes, so each image is resampled through the homography K_new⁻¹ → K_old; images, masks
    and cameras stay consistent (load() estimates the box from them).
    """
    first = views[0].camera
    w, h = first.width, first.height
    f = first.K[0, 0]
    K = np.array([[f, 0, w / 2], [0, f * fy_scale, h / 2], [0, 0, 1.0]])
    out = []
    for v in views:
        image, mask = _resample(v.image, v.mask, v.camera.K @ np.linalg.inv(K))
        out.append(View(v.name, image, mask, Camera(K, v.camera.R, v.camera.t, w, h)))
    return out


def _resample(image: np.ndarray, mask: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image sampled bilinearly at H @ (pixel centre), corner convention; the mask kept binary."""
    height, width = mask.shape
    v, u = np.mgrid[0:height, 0:width] + 0.5
    src = np.stack([u, v, np.ones_like(u)], axis=-1) @ H.T
    grid = np.stack([2 * src[..., 0] / src[..., 2] / width - 1, 2 * src[..., 1] / src[..., 2] / height - 1], -1)
    both = torch.from_numpy(np.concatenate([image, mask[:, :, None]], axis=2)).permute(2, 0, 1)[None]
    out = F.grid_sample(both.float(), torch.from_numpy(grid).float()[None], align_corners=False)
    out = out[0].permute(1, 2, 0).numpy()
    return out[:, :, :3].copy(), (out[:, :, 3] > 0.5).astype(np.float32)


def write_blender(folder: Path, views: list[View], split: str = "train", angle_y: bool = False) -> Path:
    """A split as Blender's NeRF exporter writes it: c2w in OpenGL axes, file paths without extension."""
    (folder / split).mkdir(parents=True, exist_ok=True)
    frames = []
    for v in views:
        c2w_gl = np.linalg.inv(v.camera.world_to_camera) @ np.diag([1.0, -1.0, -1.0, 1.0])
        write_rgba(folder / split / f"{v.name}.png", v.image, v.mask)
        frames.append({"file_path": f"./{split}/{v.name}", "rotation": 0.0126, "transform_matrix": c2w_gl.tolist()})
    cam = views[0].camera
    data: dict[str, Any] = {"camera_angle_x": 2 * math.atan(0.5 * cam.width / cam.K[0, 0]), "frames": frames}
    if angle_y:
        data["camera_angle_y"] = 2 * math.atan(0.5 * cam.height / cam.K[1, 1])
    path = folder / f"transforms_{split}.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def test_round_trip_by_folder_and_by_file(tmp_path, known_views, quantised, assert_same_cameras):
    views = blender_views(known_views)
    json_path = write_blender(tmp_path, views)
    assert detect(tmp_path) == ("blender", tmp_path)
    assert detect(json_path) == ("blender", json_path)
    for source in (tmp_path, json_path):
        scene = load(source)
        assert scene.format == "blender" and scene.bbox_source == "estimated"
        assert [v.name for v in scene.views] == [v.name for v in views]
        assert_same_cameras(list(scene.views), views)
        for got, want in zip(scene.views, views, strict=True):
            np.testing.assert_array_equal(got.image, quantised(want.image))
            np.testing.assert_array_equal(got.mask, want.mask)


def test_read_gives_no_bbox(tmp_path, known_views):
    write_blender(tmp_path, blender_views(known_views))
    assert blender.read(tmp_path, 1.0).bbox is None


def test_camera_angle_y_gives_fy(tmp_path, known_views, assert_same_cameras):
    views = blender_views(known_views, fy_scale=1.05)
    write_blender(tmp_path, views, angle_y=True)
    assert_same_cameras(blender.read(tmp_path, 1.0).views, views)


def test_image_scale_halves_images_and_intrinsics(tmp_path, known_views, assert_same_cameras):
    views = blender_views(known_views)
    write_blender(tmp_path, views)
    half = blender.read(tmp_path, 0.5).views
    assert_same_cameras(half, [View(v.name, v.image, v.mask, v.camera.scaled(0.5)) for v in views])
    assert half[0].image.shape == (24, 32, 3) and half[0].mask.shape == (24, 32)
    np.testing.assert_allclose(half[0].camera.K[0, 2], 16.0)


def test_named_split_file_loads_that_split(tmp_path, known_views, assert_same_cameras):
    views = blender_views(known_views)
    write_blender(tmp_path, views[:4], "train")
    test_json = write_blender(tmp_path, views[4:], "test")
    assert detect(test_json) == ("blender", test_json)
    loaded = blender.read(test_json, 1.0)
    assert [v.name for v in loaded.views] == ["view_004", "view_005"]
    assert_same_cameras(loaded.views, views[4:])
    assert [v.name for v in blender.read(tmp_path, 1.0).views] == [f"view_00{i}" for i in range(4)]


def test_transforms_json_alone_is_not_blender_and_train_split_not_ngp(tmp_path, known_views):
    ngp_dir, blender_dir = tmp_path / "ngp", tmp_path / "blender"
    ngp_dir.mkdir()
    (ngp_dir / "transforms.json").write_text("{}")
    write_blender(blender_dir, blender_views(known_views)[:1])
    assert blender.detect(ngp_dir) is None and blender.detect(ngp_dir / "transforms.json") is None
    assert ngp.detect(blender_dir) is None and ngp.detect(blender_dir / "transforms_train.json") is None


def test_convert_to_nds_keeps_cameras(tmp_path, known_views, assert_same_cameras):
    views = blender_views(known_views)
    write_blender(tmp_path / "src", views)
    loaded = blender.read(tmp_path / "src", 1.0)
    converted = load(nds.write(loaded.views, BBOX, tmp_path / "nds"))
    assert_same_cameras(list(converted.views), views)
    for a, b in zip(converted.views, loaded.views, strict=True):
        np.testing.assert_array_equal(a.camera.R, b.camera.R)
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.mask, b.mask)


def test_rgb_images_get_all_ones_masks_with_a_warning(tmp_path, known_views, caplog):
    views = blender_views(known_views)
    write_blender(tmp_path, views)
    iio.imwrite(tmp_path / "train" / "view_000.png", np.zeros((48, 64, 3), np.uint8))
    with caplog.at_level(logging.WARNING):
        loaded = blender.read(tmp_path, 1.0)
    assert (loaded.views[0].mask == 1).all() and (loaded.views[1].mask == views[1].mask).all()
    assert "all-ones" in caplog.text


def test_real_lego_cameras_look_at_the_object(tmp_path, shared_data):
    """On the real NeRF-synthetic lego: the origin is in front of every camera, at the image centre,
    world +z (Blender's up) is up in the image, and the object's silhouette surrounds the centre."""
    source = shared_data / "nerf-synthetic-lego"
    data = json.loads((source / "transforms_train.json").read_text())
    data["frames"] = data["frames"][::25]
    for frame in data["frames"]:
        frame["file_path"] = str(source / frame["file_path"])
    (tmp_path / "transforms_train.json").write_text(json.dumps(data))
    with allow_outside():  # the frames name the shared copy's images by absolute path: opted in
        views = blender.read(tmp_path, 0.25).views
    assert len(views) == 4
    for v in views:
        assert v.image.shape == (200, 200, 3)
        uv, z = v.camera.project(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
        assert (z > 0).all()
        np.testing.assert_allclose(uv[0], [100, 100], atol=0.01)
        assert uv[1, 1] < uv[0, 1] - 10
        rows, cols = np.nonzero(v.mask > 0.5)
        assert abs(cols.mean() + 0.5 - 100) < 20 and abs(rows.mean() + 0.5 - 100) < 20


# --- bad input ---------------------------------------------------------------------------------


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


BAD_JSON = {
    "truncated JSON": (lambda p: p.write_text(p.read_text()[:300]), "not valid JSON"),
    "angle is a string": (lambda p: _edit_json(p, lambda d: d.update(camera_angle_x="0.7")), "must be a number"),
    "angle missing": (lambda p: _edit_json(p, lambda d: d.pop("camera_angle_x")), "camera_angle_x"),
    "angle in degrees": (lambda p: _edit_json(p, lambda d: d.update(camera_angle_x=40)), "radians"),
    "matrix 3x3": (
        lambda p: _edit_json(p, lambda d: d["frames"][2].update(transform_matrix=np.eye(3).tolist())),
        r"frames\[2\].transform_matrix must be a 4×4",
    ),
    "matrix holds a string": (
        lambda p: _edit_json(p, lambda d: d["frames"][1]["transform_matrix"][0].__setitem__(1, "0.5")),
        "must be a number",
    ),
    "matrix holds NaN": (
        lambda p: _edit_json(p, lambda d: d["frames"][1]["transform_matrix"][2].__setitem__(3, float("nan"))),
        "finite",
    ),
    "matrix missing": (lambda p: _edit_json(p, lambda d: d["frames"][3].pop("transform_matrix")), "4×4"),
    "rotation scaled": (
        lambda p: _edit_json(
            p, lambda d: d["frames"][0].update(transform_matrix=(np.diag([2.0, 2, 2, 1])).tolist())
        ),
        "not a rotation",
    ),
    "no frames": (lambda p: _edit_json(p, lambda d: d.update(frames=[])), "no views"),
    "frames not a list": (lambda p: _edit_json(p, lambda d: d.update(frames={"a": 1})), "list of objects"),
    "file_path not a string": (lambda p: _edit_json(p, lambda d: d["frames"][0].update(file_path=3)), "file_path"),
    "top level is a list": (lambda p: p.write_text("[1, 2]"), "JSON object"),
}


@pytest.mark.parametrize("case", BAD_JSON, ids=list(BAD_JSON))
def test_bad_json_is_refused_naming_the_file(tmp_path, known_views, case):
    damage, words = BAD_JSON[case]
    json_path = write_blender(tmp_path, blender_views(known_views))
    damage(json_path)
    with pytest.raises(DatasetError, match=words) as err:
        load(tmp_path)
    assert err.value.path == json_path and "transforms_train.json" in str(err.value)


@pytest.mark.parametrize(
    ("damage", "words"),
    [(lambda p: p.unlink(), "missing"), (lambda p: p.write_bytes(p.read_bytes()[:100]), "decode")],
    ids=["missing", "truncated"],
)
def test_bad_image_is_refused_naming_it(tmp_path, known_views, damage, words):
    write_blender(tmp_path, blender_views(known_views))
    image = tmp_path / "train" / "view_003.png"
    damage(image)
    with pytest.raises(DatasetError, match=words) as err:
        load(tmp_path)
    assert err.value.path == image and "view_003.png" in str(err.value)


def test_folder_without_train_split_says_which_splits_exist(tmp_path, known_views):
    write_blender(tmp_path, blender_views(known_views)[:2], "val")
    with pytest.raises(DatasetError, match="transforms_val.json") as err:
        load(tmp_path)
    assert err.value.path == tmp_path / "transforms_train.json"
