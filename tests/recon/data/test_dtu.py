"""IDR / NeuS DTU: projection matrices decomposed into K, R, t in the world frame; scale_mat gives the box."""

from __future__ import annotations

import logging
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from recon.data import detect, load
from recon.data.formats import dtu, nds
from recon.data.scene import View
from recon.errors import DatasetError

CENTRE, RADIUS = np.array([0.1, -0.2, 0.3]), 0.8
SCALE_MAT = np.array(
    [[RADIUS, 0, 0, CENTRE[0]], [0, RADIUS, 0, CENTRE[1]], [0, 0, RADIUS, CENTRE[2]], [0, 0, 0, 1.0]]
)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def write_dtu(
    folder: Path,
    views: list[View],
    npz: str = "cameras.npz",
    image_dir: str = "image",
    mask_dir: str | None = "mask",
    names: list[str] | None = None,
) -> Path:
    """A dataset as IDR's preprocessing writes it: P = K[R|t] as 4×4 world_mat_i (any scale, any sign),
    the same scale_mat_i for every view, RGB images and 3-channel 0/255 masks."""
    names = names or [f"{i:03d}.png" for i in range(len(views))]
    (folder / image_dir).mkdir(parents=True)
    if mask_dir:
        (folder / mask_dir).mkdir()
    arrays = {}
    for i, (v, name) in enumerate(zip(views, names, strict=True)):
        iio.imwrite(folder / image_dir / name, _u8(v.image))
        if mask_dir:
            iio.imwrite(folder / mask_dir / name, np.repeat(_u8(v.mask)[:, :, None], 3, axis=2))
        world_mat = np.eye(4)
        world_mat[:3] = (-1) ** i * (i + 0.5) * v.camera.K @ np.hstack([v.camera.R, v.camera.t[:, None]])
        arrays[f"world_mat_{i}"] = world_mat
        arrays[f"scale_mat_{i}"] = SCALE_MAT
    np.savez(folder / npz, **arrays)
    return folder / npz


def test_round_trip_by_folder_and_by_file(tmp_path, known_views, quantised, assert_same_cameras):
    npz = write_dtu(tmp_path, known_views)
    assert detect(tmp_path) == ("dtu", tmp_path)
    assert detect(npz) == ("dtu", npz)
    for source in (tmp_path, npz):
        scene = load(source)
        assert scene.format == "dtu" and scene.bbox_source == "given"
        np.testing.assert_allclose(scene.bbox, [CENTRE - RADIUS, CENTRE + RADIUS], atol=1e-12)
        assert_same_cameras(list(scene.views), known_views)
        for got, want in zip(scene.views, known_views, strict=True):
            np.testing.assert_array_equal(got.image, quantised(want.image))
            np.testing.assert_array_equal(got.mask, want.mask)


def test_neus_layout_and_unpadded_names_pair_in_number_order(tmp_path, known_views, assert_same_cameras):
    views = known_views + known_views[:6]
    names = [f"{i}.png" for i in range(len(views))]  # 0 … 11: plain text order would put 10 before 2
    write_dtu(tmp_path, views, npz="cameras_sphere.npz", image_dir="images", mask_dir="masks", names=names)
    scene = load(tmp_path)
    assert [v.name for v in scene.views] == [str(i) for i in range(12)]
    assert_same_cameras(list(scene.views), views)


def test_image_scale_halves_images_and_intrinsics(tmp_path, known_views, assert_same_cameras):
    write_dtu(tmp_path, known_views)
    half = load(tmp_path, image_scale=0.5)
    assert_same_cameras(list(half.views), [View(v.name, v.image, v.mask, v.camera.scaled(0.5)) for v in known_views])
    assert half.views[0].image.shape == (24, 32, 3) and half.views[0].mask.shape == (24, 32)


def test_missing_mask_folder_gives_all_ones_and_a_warning(tmp_path, known_views, caplog):
    write_dtu(tmp_path, known_views, mask_dir=None)
    with caplog.at_level(logging.WARNING):
        views = dtu.read(tmp_path, 1.0).views
    assert all((v.mask == 1).all() for v in views)
    assert "all-ones" in caplog.text


def test_convert_to_nds_keeps_cameras_and_bbox(tmp_path, known_views, assert_same_cameras):
    write_dtu(tmp_path / "src", known_views)
    scene = load(tmp_path / "src")
    converted = load(nds.write(scene, None, tmp_path / "nds"))
    np.testing.assert_array_equal(converted.bbox, scene.bbox)
    assert_same_cameras(list(converted.views), known_views)
    for a, b in zip(converted.views, scene.views, strict=True):
        np.testing.assert_array_equal(a.camera.K, b.camera.K)
        np.testing.assert_array_equal(a.camera.R, b.camera.R)
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.mask, b.mask)


# --- bad input ---------------------------------------------------------------------------------


def _rewrite_npz(path: Path, **changes) -> None:
    with np.load(path) as f:
        arrays = dict(f)
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(path, **arrays)


BAD_NPZ = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:300]), "truncated"),
    "not a zip": (lambda p: p.write_bytes(b"\x93NUMPY garbage" * 10), "not an npz"),
    "pickled object array": (lambda p: _rewrite_npz(p, world_mat_1=np.array([{"a": 1}], dtype=object)), "pickle"),
    "world_mat missing": (lambda p: _rewrite_npz(p, world_mat_3=None), r"'world_mat_3' for image 003.png"),
    "world_mat NaN": (lambda p: _rewrite_npz(p, world_mat_2=np.full((4, 4), np.nan)), "world_mat_2 contains NaN"),
    "world_mat singular": (lambda p: _rewrite_npz(p, world_mat_2=np.ones((3, 4))), "singular"),
    "world_mat wrong shape": (lambda p: _rewrite_npz(p, world_mat_2=np.eye(3)), "3×4 or 4×4"),
    "scale_mat wrong shape": (lambda p: _rewrite_npz(p, scale_mat_0=np.eye(3)), "scale_mat_0"),
}


@pytest.mark.parametrize("case", BAD_NPZ, ids=list(BAD_NPZ))
def test_bad_npz_is_refused_naming_the_file(tmp_path, known_views, case):
    damage, words = BAD_NPZ[case]
    npz = write_dtu(tmp_path, known_views)
    damage(npz)
    with pytest.raises(DatasetError, match=words) as err:
        load(tmp_path)
    assert err.value.path == npz and "cameras.npz" in str(err.value)


@pytest.mark.parametrize(
    ("name", "damage", "words"),
    [
        ("image/001.png", lambda p: p.write_bytes(p.read_bytes()[:80]), "decode"),
        ("mask/004.png", lambda p: iio.imwrite(p, np.zeros((40, 64), np.uint8)), "differs from the image"),
        ("mask/004.png", lambda p: p.write_bytes(p.read_bytes()[:60]), "decode"),
        ("mask", lambda p: (p / "005.png").unlink(), "5 masks for 6 images"),
    ],
    ids=["image-truncated", "mask-size", "mask-corrupt", "mask-count"],
)
def test_bad_image_or_mask_is_refused_naming_it(tmp_path, known_views, name, damage, words):
    write_dtu(tmp_path, known_views)
    damage(tmp_path / name)
    with pytest.raises(DatasetError, match=words) as err:
        load(tmp_path)
    assert err.value.path == tmp_path / name and Path(name).name in str(err.value)


def test_empty_image_folder_is_refused(tmp_path, known_views):
    write_dtu(tmp_path, known_views)
    for p in (tmp_path / "image").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match="no images") as err:
        load(tmp_path)
    assert err.value.path == tmp_path / "image"
