"""COLMAP sparse models: text and binary written here as COLMAP writes them, read back exactly."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from recon.data import detect, load
from recon.data.formats import colmap
from recon.data.paths import allow_outside
from recon.data.scene import View
from recon.errors import DatasetError
from render.camera import Camera

MODEL_IDS = {
    "SIMPLE_PINHOLE": 0, "PINHOLE": 1, "SIMPLE_RADIAL": 2, "RADIAL": 3,
    "OPENCV": 4, "OPENCV_FISHEYE": 5, "FULL_OPENCV": 6,
}


# --- writing models the way COLMAP does -------------------------------------------------------


def quaternion(R: np.ndarray) -> np.ndarray:
    """(w, x, y, z) of a rotation matrix (Shepperd's method: stable for every rotation)."""
    trace = np.trace(R)
    i = int(np.argmax([trace, R[0, 0], R[1, 1], R[2, 2]]))
    if i == 0:
        w = np.sqrt(1 + trace) / 2
        q = [w, (R[2, 1] - R[1, 2]) / (4 * w), (R[0, 2] - R[2, 0]) / (4 * w), (R[1, 0] - R[0, 1]) / (4 * w)]
    else:
        a, b, c = (i - 1, i % 3, (i + 1) % 3)
        s = np.sqrt(1 + R[a, a] - R[b, b] - R[c, c]) * 2
        v = np.zeros(3)
        v[a], v[b], v[c] = s / 4, (R[b, a] + R[a, b]) / s, (R[c, a] + R[a, c]) / s
        q = [(R[c, b] - R[b, c]) / s, *v]
    q = np.array(q)
    return q if q[0] >= 0 else -q


def pinhole_params(cam: Camera) -> tuple[str, list[float]]:
    return "PINHOLE", [cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2]]


def write_text_model(folder: Path, entries: list[tuple[str, Camera, str, list[float]]]) -> None:
    """entries: (image name, camera, COLMAP model, params); one COLMAP camera per image."""
    folder.mkdir(parents=True, exist_ok=True)
    cams = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    imgs = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
    ]
    for k, (name, cam, model, params) in enumerate(entries):
        cams.append(" ".join([str(k + 1), model, str(cam.width), str(cam.height)] + [repr(float(p)) for p in params]))
        q = quaternion(cam.R)
        imgs.append(" ".join([str(10 + k)] + [repr(float(x)) for x in (*q, *cam.t)] + [str(k + 1), name]))
        # Every other image has observations, the others an empty points line, as COLMAP writes them.
        imgs.append("12.5 7.25 -1 30.0 20.0 4" if k % 2 else "")
    (folder / "cameras.txt").write_text("\n".join(cams) + "\n")
    (folder / "images.txt").write_text("\n".join(imgs) + "\n")


def write_binary_model(folder: Path, entries: list[tuple[str, Camera, str, list[float]]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cams = [struct.pack("<Q", len(entries))]
    imgs = [struct.pack("<Q", len(entries))]
    for k, (name, cam, model, params) in enumerate(entries):
        cams.append(struct.pack("<iiQQ", k + 1, MODEL_IDS[model], cam.width, cam.height))
        cams.append(struct.pack(f"<{len(params)}d", *params))
        imgs.append(struct.pack("<i7di", 10 + k, *quaternion(cam.R), *cam.t, k + 1))
        imgs.append(name.encode() + b"\0")
        points = [(1.5 * j, 2.5 * j, -1 if j % 2 else j) for j in range(k)]
        imgs.append(struct.pack("<Q", len(points)))
        imgs.extend(struct.pack("<ddq", *p) for p in points)
    (folder / "cameras.bin").write_bytes(b"".join(cams))
    (folder / "images.bin").write_bytes(b"".join(imgs))


def write_images(root: Path, views: list[View], mask_names: str | None = "colmap") -> None:
    """Images into images/, masks into masks/ named the COLMAP way (`a.png.png`) or like the image."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    for v in views:
        iio.imwrite(root / "images" / f"{v.name}.png", _u8(v.image))
        if mask_names is not None:
            (root / "masks").mkdir(exist_ok=True)
            name = f"{v.name}.png.png" if mask_names == "colmap" else f"{v.name}.png"
            iio.imwrite(root / "masks" / name, _u8(v.mask))


def known_size(view: View) -> tuple[int, int]:
    return view.camera.width, view.camera.height


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def dataset(root: Path, views: list[View], binary: bool = False, where: str = "sparse/0", **kw) -> Path:
    write_images(root, views, **kw)
    entries = [(f"{v.name}.png", v.camera, *pinhole_params(v.camera)) for v in views]
    (write_binary_model if binary else write_text_model)(root / where if where else root, entries)
    return root


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_round_trip(tmp_path, known_views, binary, assert_same_cameras):
    root = dataset(tmp_path / "scene", known_views, binary=binary)
    scene = load(root)
    assert scene.format == "colmap" and scene.source == root
    assert scene.bbox_source == "estimated"
    assert_same_cameras(list(scene.views), known_views, atol_k=1e-9, names=True)


def test_model_in_sparse_or_in_the_folder_and_masks_named_like_images(tmp_path, known_views, assert_same_cameras):
    for where in ("sparse", ""):
        root = dataset(tmp_path / (where or "flat"), known_views, where=where, mask_names="same")
        assert_same_cameras(colmap.read(detect(root)[1], 1.0).views, known_views, atol_k=1e-9, names=True)


def test_detect_from_model_folder_or_file(tmp_path, known_views):
    root = dataset(tmp_path / "scene", known_views, binary=True)
    for path in (root, root / "sparse", root / "sparse" / "0", root / "sparse" / "0" / "cameras.bin"):
        assert detect(path) == ("colmap", root), path
    assert colmap.detect(tmp_path / "scene" / "images") is None


def test_simple_pinhole(tmp_path, known_views, assert_same_cameras):
    views = []
    for v in known_views:  # one focal length for SIMPLE_PINHOLE
        K = v.camera.K.copy()
        K[1, 1] = K[0, 0]
        views.append(View(v.name, v.image, v.mask, Camera(K, v.camera.R, v.camera.t, *known_size(v))))
    write_images(tmp_path, views)
    entries = [(f"{v.name}.png", v.camera, "SIMPLE_PINHOLE", [v.camera.K[0, 0], *v.camera.K[:2, 2]]) for v in views]
    write_binary_model(tmp_path / "sparse" / "0", entries)
    assert_same_cameras(colmap.read(tmp_path, 1.0).views, views, atol_k=1e-9, names=True)


def test_image_scale(tmp_path, known_views):
    root = dataset(tmp_path, known_views)
    view = colmap.read(root, 0.5).views[0]
    want = known_views[0].camera
    assert view.image.shape == (want.height // 2, want.width // 2, 3)
    np.testing.assert_allclose(view.camera.K[:2], want.K[:2] * 0.5)


def test_without_masks_alpha_is_used_else_ones_with_a_warning(tmp_path, known_views, caplog):
    root = dataset(tmp_path / "plain", known_views, mask_names=None)
    with caplog.at_level(logging.WARNING):
        views = colmap.read(root, 1.0).views
    assert all(np.all(v.mask == 1) for v in views)
    assert "all-ones" in caplog.text

    rgba = dataset(tmp_path / "rgba", known_views, mask_names=None)
    for v in known_views:
        iio.imwrite(rgba / "images" / f"{v.name}.png", _u8(np.concatenate([v.image, v.mask[:, :, None]], axis=2)))
    for got, want in zip(colmap.read(rgba, 1.0).views, known_views):
        np.testing.assert_allclose(got.mask, want.mask, atol=0.6 / 255)


# --- lens distortion ----------------------------------------------------------------------------


def _colmap_distort(model: str, params: list[float], x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COLMAP's forward lens models, written out independently of the loader's."""
    r2 = x * x + y * y
    if model == "SIMPLE_RADIAL":
        radial, p1, p2 = params[3] * r2, 0.0, 0.0
    elif model == "RADIAL":
        radial, p1, p2 = params[3] * r2 + params[4] * r2 * r2, 0.0, 0.0
    else:  # OPENCV
        k1, k2, p1, p2 = params[4:8]
        radial = k1 * r2 + k2 * r2 * r2
    dx = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    dy = y * radial + 2 * p2 * x * y + p1 * (r2 + 2 * y * y)
    return x + dx, y + dy


@pytest.mark.parametrize(
    "model, lens",
    [("SIMPLE_RADIAL", [-0.4]), ("RADIAL", [-0.35, 0.1]), ("OPENCV", [-0.35, 0.08, 0.006, -0.004])],
)
def test_distorted_images_are_resampled_to_the_pinhole(tmp_path, model, lens):
    """Dots photographed through the lens land, after loading, where the pinhole projects their points."""
    W, H, f = 120, 90, 100.0
    cam = Camera(np.array([[f, 0, 61.0], [0, f, 44.0], [0, 0, 1]]), np.eye(3), np.zeros(3), W, H)
    params = ([f, 61.0, 44.0] if model != "OPENCV" else [f, f, 61.0, 44.0]) + lens
    # 3-D points whose pinhole projections sit near the corners, where the lens moves them most.
    uv_true = np.array([[18.0, 15.0], [100.0, 20.0], [22.0, 72.0], [96.0, 70.0], [60.0, 45.0]])
    x, y = (uv_true[:, 0] - 61.0) / f, (uv_true[:, 1] - 44.0) / f
    xd, yd = _colmap_distort(model, params, x, y)
    uv_seen = np.stack([f * xd + 61.0, f * yd + 44.0], axis=1)
    assert np.linalg.norm(uv_seen - uv_true, axis=1).max() > 2  # the lens matters at this size

    v, u = np.mgrid[0:H, 0:W] + 0.5
    photo = sum(np.exp(-((u - a) ** 2 + (v - b) ** 2) / (2 * 1.5**2)) for a, b in uv_seen)
    (tmp_path / "images").mkdir()
    iio.imwrite(tmp_path / "images" / "dots.png", np.round(photo * 65535).astype(np.uint16))
    write_text_model(tmp_path, [("dots.png", cam, model, params)])

    view = colmap.read(tmp_path, 1.0).views[0]
    np.testing.assert_allclose(view.camera.K, cam.K)
    grey = view.image[:, :, 0]
    for a, b in uv_true:
        win = (np.abs(u - a) < 5) & (np.abs(v - b) < 5)
        weight = grey * win
        centroid = np.array([(weight * u).sum(), (weight * v).sum()]) / weight.sum()
        assert np.linalg.norm(centroid - [a, b]) < 0.3, (model, (a, b), centroid)


def test_zero_distortion_is_a_pinhole(tmp_path, known_views, assert_same_cameras):
    write_images(tmp_path, known_views)
    entries = [(f"{v.name}.png", v.camera, "OPENCV", [*pinhole_params(v.camera)[1]] + [0.0] * 4) for v in known_views]
    write_text_model(tmp_path / "sparse" / "0", entries)
    assert_same_cameras(colmap.read(tmp_path, 1.0).views, known_views, atol_k=1e-9, names=True)


# --- refusals: each names the file at fault -----------------------------------------------------


@pytest.mark.parametrize("model, count", [("OPENCV_FISHEYE", 8), ("FULL_OPENCV", 12)])
def test_unsupported_model_is_refused_with_the_fix(tmp_path, known_views, model, count):
    write_images(tmp_path, known_views[:1])
    cam = known_views[0].camera
    params = [*pinhole_params(cam)[1]] + [0.01] * (count - 4)
    write_text_model(tmp_path, [(f"{known_views[0].name}.png", cam, model, params)])
    with pytest.raises(DatasetError, match=model) as info:
        colmap.read(tmp_path, 1.0)
    assert info.value.path == tmp_path / "cameras.txt"
    assert "image_undistorter" in str(info.value)


def test_unknown_model_and_wrong_parameter_count(tmp_path, known_views):
    write_images(tmp_path, known_views[:1])
    cam = known_views[0].camera
    name = f"{known_views[0].name}.png"
    write_text_model(tmp_path, [(name, cam, "MYSTERY", [1.0, 2.0])])
    with pytest.raises(DatasetError, match="unknown camera model 'MYSTERY'") as info:
        colmap.read(tmp_path, 1.0)
    assert info.value.path == tmp_path / "cameras.txt"
    write_text_model(tmp_path, [(name, cam, "PINHOLE", [50.0, 50.0, 32.0])])
    with pytest.raises(DatasetError, match="line 3: PINHOLE needs 4 parameters, got 3"):
        colmap.read(tmp_path, 1.0)


@pytest.mark.parametrize("file", ["cameras.bin", "images.bin"])
def test_truncated_binary_is_refused(tmp_path, known_views, file):
    root = dataset(tmp_path, known_views, binary=True)
    path = root / "sparse" / "0" / file
    path.write_bytes(path.read_bytes()[:-13])
    with pytest.raises(DatasetError, match="truncated") as info:
        load(root)
    assert info.value.path == path


def test_nan_and_non_unit_quaternion_are_refused(tmp_path, known_views):
    root = dataset(tmp_path, known_views)
    images = root / "sparse" / "0" / "images.txt"
    lines = images.read_text().splitlines()
    data = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    good = lines[data].split()

    lines[data] = " ".join(good[:5] + ["nan"] + good[6:])
    images.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="NaN") as info:
        colmap.read(root, 1.0)
    assert info.value.path == images

    lines[data] = " ".join(good[:1] + ["2", "0", "0", "0"] + good[5:])
    images.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="not a rotation") as info:
        colmap.read(root, 1.0)
    assert info.value.path == images


def test_missing_or_corrupt_image_and_wrong_size_are_refused(tmp_path, known_views):
    root = dataset(tmp_path, known_views)
    image = root / "images" / f"{known_views[2].name}.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DatasetError) as info:
        colmap.read(root, 1.0)
    assert info.value.path == image
    image.unlink()
    with pytest.raises(DatasetError, match="missing") as info:
        colmap.read(root, 1.0)
    assert info.value.path == image
    iio.imwrite(image, np.zeros((10, 12, 3), np.uint8))
    with pytest.raises(DatasetError, match="12×10 but its COLMAP camera says 64×48") as info:
        colmap.read(root, 1.0)
    assert info.value.path == image


def test_missing_mask_and_unknown_camera_id_are_refused(tmp_path, known_views):
    root = dataset(tmp_path, known_views)
    (root / "masks" / f"{known_views[1].name}.png.png").unlink()
    with pytest.raises(DatasetError, match="mask for image view_001.png is missing") as info:
        colmap.read(root, 1.0)
    assert info.value.path.parent == root / "masks"

    root = dataset(tmp_path / "ids", known_views)
    cameras = root / "sparse" / "0" / "cameras.txt"
    kept = [line for line in cameras.read_text().splitlines() if not line.startswith("3 ")]
    cameras.write_text("\n".join(kept) + "\n")
    with pytest.raises(DatasetError, match="refers to camera 3") as info:
        colmap.read(root, 1.0)
    assert info.value.path == root / "sparse" / "0" / "images.txt"


def test_empty_mask_is_refused_by_load(tmp_path, known_views):
    root = dataset(tmp_path, known_views)
    iio.imwrite(root / "masks" / f"{known_views[4].name}.png.png", np.zeros((48, 64), np.uint8))
    with pytest.raises(DatasetError, match="view_004: the mask is empty"):
        load(root)


def test_images_in_subfolders_keep_distinct_names(tmp_path, known_views):
    """COLMAP names images by their path under images/ (one folder per camera rig, say)."""
    entries = []
    for k, v in enumerate(known_views[:2]):
        name = f"rig{k}/shot.png"
        for folder, data, suffix in (("images", v.image, ""), ("masks", v.mask, ".png")):
            (tmp_path / folder / f"rig{k}").mkdir(parents=True, exist_ok=True)
            iio.imwrite(tmp_path / folder / f"{name}{suffix}", _u8(data))
        entries.append((name, v.camera, *pinhole_params(v.camera)))
    write_text_model(tmp_path / "sparse" / "0", entries)
    views = colmap.read(tmp_path, 1.0).views
    assert [v.name for v in views] == ["rig0_shot", "rig1_shot"]
    np.testing.assert_allclose(views[1].mask, known_views[1].mask, atol=0.6 / 255)


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_image_names_outside_the_dataset_need_the_explicit_flag(tmp_path, known_views, binary):
    """An absolute or ../ image name would read any file; it is refused unless the user allows it."""
    outside = dataset(tmp_path / "elsewhere", known_views[:1])
    root = tmp_path / "scene"
    write_images(root, known_views)
    names = [str(outside / "images" / f"{known_views[0].name}.png"), f"../../elsewhere/images/{known_views[0].name}.png"]
    for name in names:
        entries = [(name, known_views[0].camera, *pinhole_params(known_views[0].camera))]
        (write_binary_model if binary else write_text_model)(root / "sparse" / "0", entries)
        (root / "masks" / f"{Path(name).name}.png.png").write_bytes((root / "masks" / f"{known_views[0].name}.png.png").read_bytes())
        with pytest.raises(DatasetError, match="outside the dataset"):
            colmap.read(root, 1.0)
    with allow_outside():
        assert len(colmap.read(root, 1.0).views) == 1
