"""instant-ngp / nerfstudio transforms.json: intrinsics per file or frame, masks, lens undistortion, refusals."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import pytest

from recon.data import detect, load
from recon.data.formats import nds, ngp
from recon.data.images import write_rgba
from recon.data.scene import View
from recon.errors import DatasetError
from render.camera import Camera

BBOX = np.array([[-0.5, -0.8, -0.3], [0.7, 0.4, 0.9]])
GL = np.diag([1.0, -1.0, -1.0, 1.0])


def _intrinsics(cam: Camera) -> dict[str, float]:
    return {"fl_x": cam.K[0, 0], "fl_y": cam.K[1, 1], "cx": cam.K[0, 2], "cy": cam.K[1, 2]}


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def write_ngp(folder: Path, views: list[View], masks: str = "alpha", **top: Any) -> Path:
    """transforms.json as instant-ngp's colmap2nerf / nerfstudio write it.

    File-level intrinsics are the first view's; frames whose camera differs carry their own
    (nerfstudio's per-frame form). `masks`: "alpha" (RGBA), "files" (mask_path) or "none".
    """
    (folder / "images").mkdir(parents=True, exist_ok=True)
    first = views[0].camera
    data: dict[str, Any] = {
        "camera_model": "OPENCV", **_intrinsics(first), "w": first.width, "h": first.height,
        "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0, "aabb_scale": 16, "frames": [],
    }
    data.update(top)
    for v in views:
        frame: dict[str, Any] = {
            "file_path": f"images/{v.name}.png",
            "transform_matrix": (np.linalg.inv(v.camera.world_to_camera) @ GL).tolist(),
        }
        if not np.array_equal(v.camera.K, first.K):
            frame.update(_intrinsics(v.camera))
        image = folder / "images" / f"{v.name}.png"
        if masks == "alpha":
            write_rgba(image, v.image, v.mask)
        else:
            iio.imwrite(image, _u8(v.image))
        if masks == "files":
            (folder / "masks").mkdir(exist_ok=True)
            iio.imwrite(folder / "masks" / f"{v.name}.png", _u8(v.mask))
            frame["mask_path"] = f"masks/{v.name}.png"
        data["frames"].append(frame)
    path = folder / "transforms.json"
    path.write_text(json.dumps(data, indent=1))
    return path


def test_round_trip_by_folder_and_by_file(tmp_path, known_views, quantised, assert_same_cameras):
    json_path = write_ngp(tmp_path, known_views)
    assert detect(tmp_path) == ("ngp", tmp_path)
    assert detect(json_path) == ("ngp", tmp_path)
    for source in (tmp_path, json_path):
        scene = load(source)
        assert scene.format == "ngp" and scene.bbox_source == "estimated"
        assert_same_cameras(list(scene.views), known_views)
        for got, want in zip(scene.views, known_views, strict=True):
            np.testing.assert_array_equal(got.image, quantised(want.image))
            np.testing.assert_array_equal(got.mask, want.mask)


def test_aabb_scale_is_not_a_bounding_box(tmp_path, known_views):
    write_ngp(tmp_path, known_views, aabb=[[-1, -1, -1], [1, 1, 1]])
    assert ngp.read(tmp_path, 1.0).bbox is None


def test_mask_files_are_used(tmp_path, known_views, quantised):
    write_ngp(tmp_path, known_views, masks="files")
    views = ngp.read(tmp_path, 1.0).views
    for got, want in zip(views, known_views, strict=True):
        np.testing.assert_array_equal(got.mask, want.mask)
        np.testing.assert_array_equal(got.image, quantised(want.image))


def test_no_masks_means_all_ones_and_a_warning(tmp_path, known_views, caplog):
    write_ngp(tmp_path, known_views, masks="none")
    with caplog.at_level(logging.WARNING):
        views = ngp.read(tmp_path, 1.0).views
    assert all((v.mask == 1).all() for v in views)
    assert "all-ones" in caplog.text and "transforms.json" in caplog.text


def test_camera_angle_x_when_no_focal_length(tmp_path, known_views):
    json_path = write_ngp(tmp_path, known_views[:1])
    data = json.loads(json_path.read_text())
    for key in ("fl_x", "fl_y", "cx", "cy"):
        del data[key]
    data["camera_angle_x"] = 2 * math.atan(0.5 * 64 / 70.0)
    json_path.write_text(json.dumps(data))
    K = ngp.read(tmp_path, 1.0).views[0].camera.K
    np.testing.assert_allclose(K, [[70, 0, 32], [0, 70, 24], [0, 0, 1]], atol=1e-9)


def test_image_scale_halves_images_and_intrinsics(tmp_path, known_views, assert_same_cameras):
    write_ngp(tmp_path, known_views)
    half = ngp.read(tmp_path, 0.5).views
    assert_same_cameras(half, [View(v.name, v.image, v.mask, v.camera.scaled(0.5)) for v in known_views])
    assert half[0].image.shape == (24, 32, 3) and (half[0].camera.width, half[0].camera.height) == (32, 24)


def test_convert_to_nds_keeps_cameras(tmp_path, known_views, assert_same_cameras):
    write_ngp(tmp_path / "src", known_views)
    loaded = ngp.read(tmp_path / "src", 1.0)
    converted = load(nds.write(loaded.views, BBOX, tmp_path / "nds"))
    assert_same_cameras(list(converted.views), known_views)
    for a, b in zip(converted.views, loaded.views, strict=True):
        np.testing.assert_array_equal(a.camera.K, b.camera.K)
        np.testing.assert_array_equal(a.image, b.image)


# --- lens distortion ---------------------------------------------------------------------------

LENS = {"k1": -0.25, "k2": 0.08, "k3": -0.01, "p1": 0.004, "p2": -0.003}
K_LENS = np.array([[70.0, 0.0, 49.5], [0.0, 74.0, 34.0], [0.0, 0.0, 1.0]])
W_LENS, H_LENS = 96, 72
BLOBS = np.array([(u, v) for u in (14.0, 48.0, 82.0) for v in (12.0, 36.0, 60.0)])  # pinhole pixels
SIGMA = 1.6
DISK_CENTRE, DISK_RADIUS = np.array([48.0, 36.0]), 30.0


def _ideal_from_distorted(xd: np.ndarray, yd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Invert OpenCV's radial-tangential model by fixed-point iteration (how OpenCV's undistortPoints works)."""
    k1, k2, k3, p1, p2 = (LENS[k] for k in ("k1", "k2", "k3", "p1", "p2"))
    x, y = xd.copy(), yd.copy()
    for _ in range(100):
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        x, y = (xd - dx) / radial, (yd - dy) / radial
    return x, y


def _photo_through_lens() -> np.ndarray:
    """8-bit RGBA photo of Gaussian blobs (RGB) and a disk (alpha) placed at known pinhole pixels."""
    v, u = np.mgrid[0:H_LENS, 0:W_LENS] + 0.5
    xd, yd = (u - K_LENS[0, 2]) / K_LENS[0, 0], (v - K_LENS[1, 2]) / K_LENS[1, 1]
    x, y = _ideal_from_distorted(xd, yd)
    ideal = np.stack([K_LENS[0, 0] * x + K_LENS[0, 2], K_LENS[1, 1] * y + K_LENS[1, 2]], axis=-1)
    d2 = ((ideal[:, :, None, :] - BLOBS) ** 2).sum(-1)
    blobs = np.exp(-d2 / (2 * SIGMA**2)).sum(-1)
    disk = np.linalg.norm(ideal - DISK_CENTRE, axis=-1) < DISK_RADIUS
    rgba = np.stack([blobs, blobs, blobs, disk], axis=-1)
    return _u8(rgba)


def _centroid(image: np.ndarray, near: np.ndarray, half: int = 5) -> np.ndarray:
    """Intensity-weighted centre (corner convention) of the blob in a window around `near`."""
    c, r = np.floor(near).astype(int)
    window = image[r - half : r + half + 1, c - half : c + half + 1]
    v, u = np.mgrid[r - half : r + half + 1, c - half : c + half + 1] + 0.5
    return np.array([(window * u).sum(), (window * v).sum()]) / window.sum()


def _write_lens_dataset(folder: Path, **keys: Any) -> Path:
    (folder / "images").mkdir(parents=True)
    iio.imwrite(folder / "images" / "photo.png", _photo_through_lens())
    data = {
        "camera_model": "OPENCV", "fl_x": K_LENS[0, 0], "fl_y": K_LENS[1, 1], "cx": K_LENS[0, 2],
        "cy": K_LENS[1, 2], "w": W_LENS, "h": H_LENS, **LENS,
        "frames": [{"file_path": "images/photo.png", "transform_matrix": np.eye(4).tolist()}],
    }
    data.update(keys)
    path = folder / "transforms.json"
    path.write_text(json.dumps(data))
    return path


def test_distorted_photo_is_resampled_onto_the_pinhole(tmp_path):
    raw = _photo_through_lens()[:, :, 0] / 255.0
    # The lens moves the outer blobs by pixels, so a loader that ignored it would fail below.
    assert np.linalg.norm(_centroid(raw, BLOBS[0]) - BLOBS[0]) > 2.0
    _write_lens_dataset(tmp_path)
    view = ngp.read(tmp_path, 1.0).views[0]
    np.testing.assert_array_equal(view.camera.K, K_LENS)
    for blob in BLOBS:
        np.testing.assert_allclose(_centroid(view.image[:, :, 0], blob), blob, atol=0.1)
    v, u = np.mgrid[0:H_LENS, 0:W_LENS] + 0.5
    dist = np.hypot(u - DISK_CENTRE[0], v - DISK_CENTRE[1])
    assert (view.mask[dist < DISK_RADIUS - 1.5] > 0.5).all()
    assert (view.mask[dist > DISK_RADIUS + 1.5] < 0.5).all()


def test_zero_distortion_leaves_pixels_untouched(tmp_path):
    _write_lens_dataset(tmp_path, k1=0.0, k2=0.0, k3=0.0, p1=0.0, p2=0.0)
    view = ngp.read(tmp_path, 1.0).views[0]
    np.testing.assert_array_equal(view.image[:, :, 0], _photo_through_lens()[:, :, 0] / np.float32(255))


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ({"camera_model": "OPENCV_FISHEYE", "k4": 0.01}, "fisheye"),
        ({"is_fisheye": True}, "fisheye"),
        ({"camera_model": "EQUIRECTANGULAR"}, "not supported"),
        ({"camera_model": "PINHOLE"}, "no distortion"),
        ({"k4": 0.02}, "'k4'"),
    ],
    ids=["opencv-fisheye", "is-fisheye", "equirectangular", "pinhole-with-k", "k4"],
)
def test_unsupported_lenses_are_refused(tmp_path, keys, words):
    json_path = _write_lens_dataset(tmp_path, **keys)
    with pytest.raises(DatasetError, match=words) as err:
        ngp.read(tmp_path, 1.0)
    assert err.value.path == json_path and "transforms.json" in str(err.value)


# --- bad input ---------------------------------------------------------------------------------


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _drop_focal(d: dict) -> None:
    for key in ("fl_x", "fl_y"):
        d.pop(key)
    for f in d["frames"]:
        f.pop("fl_x", None)


BAD_JSON = {
    "truncated JSON": (lambda p: p.write_text(p.read_text()[:250]), "not valid JSON"),
    "fl_x a string": (lambda p: _edit(p, lambda d: d.update(fl_x="70")), "'fl_x' must be a number"),
    "frame cy null": (lambda p: _edit(p, lambda d: d["frames"][2].update(cy=None)), r"frames\[2\].'cy'"),
    "no focal length": (lambda p: _edit(p, _drop_focal), "focal length"),
    "w does not match": (lambda p: _edit(p, lambda d: d.update(w=128)), "128×48"),
    "matrix 4x3": (
        lambda p: _edit(p, lambda d: d["frames"][1].update(transform_matrix=np.ones((4, 3)).tolist())),
        r"frames\[1\].transform_matrix must be a 4×4",
    ),
    "matrix bad last row": (
        lambda p: _edit(p, lambda d: d["frames"][1]["transform_matrix"].__setitem__(3, [0, 0, 1, 1])),
        "last row",
    ),
    "no frames": (lambda p: _edit(p, lambda d: d.pop("frames")), "no 'frames'"),
    "camera_model a number": (lambda p: _edit(p, lambda d: d.update(camera_model=3)), "must be a string"),
}


@pytest.mark.parametrize("case", BAD_JSON, ids=list(BAD_JSON))
def test_bad_json_is_refused_naming_the_file(tmp_path, known_views, case):
    damage, words = BAD_JSON[case]
    json_path = write_ngp(tmp_path, known_views)
    damage(json_path)
    with pytest.raises(DatasetError, match=words) as err:
        load(tmp_path)
    assert err.value.path == json_path and "transforms.json" in str(err.value)


def _shrink(path: Path) -> None:
    iio.imwrite(path, iio.imread(path)[:40])


@pytest.mark.parametrize(
    ("name", "damage", "words"),
    [
        ("images/view_002.png", lambda p: p.unlink(), "missing"),
        ("images/view_002.png", lambda p: p.write_bytes(p.read_bytes()[:90]), "decode"),
        ("masks/view_004.png", lambda p: p.unlink(), "missing"),
        ("masks/view_004.png", _shrink, "differs from the image"),
    ],
    ids=["image-missing", "image-truncated", "mask-missing", "mask-size"],
)
def test_bad_image_or_mask_is_refused_naming_it(tmp_path, known_views, name, damage, words):
    write_ngp(tmp_path, known_views, masks="files")
    damage(tmp_path / name)
    with pytest.raises(DatasetError, match=words) as err:
        load(tmp_path)
    assert err.value.path == tmp_path / name and Path(name).name in str(err.value)
