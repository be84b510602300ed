"""NDS folder format: reading hand-written folders, the lossless writer, and refusal of bad files."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from recon.data import detect, load
from recon.data.formats import nds
from recon.data.scene import View
from recon.errors import DatasetError

BBOX = np.array([[-0.4, -0.7, -0.2], [0.6, 0.3, 0.8]])
POINT = np.array([[0.25, -0.1, 0.4]])


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def write_by_hand(folder: Path, views: list[View], bbox: np.ndarray | None = BBOX) -> Path:
    """An NDS folder as the original NDS tools write it: numpy savetxt tables, RGBA PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    for v in views:
        rgba = np.concatenate([_to_uint8(v.image), _to_uint8(v.mask)[:, :, None]], axis=2)
        iio.imwrite(folder / f"{v.name}.png", rgba)
        np.savetxt(folder / f"{v.name}_k.txt", v.camera.K)
        np.savetxt(folder / f"{v.name}_r.txt", v.camera.R)
        np.savetxt(folder / f"{v.name}_t.txt", v.camera.t)
    if bbox is not None:
        np.savetxt(folder / "bbox.txt", bbox)
    return folder


def test_reads_hand_written_folder_by_folder_and_by_file(tmp_path, known_views, quantised):
    root = write_by_hand(tmp_path / "ds", known_views)
    assert detect(root) == ("nds", root)
    assert detect(root / "view_002_k.txt") == ("nds", root)
    assert detect(root / "view_002.png") == ("nds", root)
    for scene in (load(root), load(root / "view_000_r.txt")):
        assert scene.format == "nds" and scene.bbox_source == "given"
        np.testing.assert_allclose(scene.bbox, BBOX, atol=1e-15)
        assert [v.name for v in scene.views] == [v.name for v in known_views]
        for got, want in zip(scene.views, known_views, strict=True):
            np.testing.assert_allclose(got.camera.K, want.camera.K, atol=1e-9)
            np.testing.assert_allclose(got.camera.R, want.camera.R, atol=1e-12)
            np.testing.assert_allclose(got.camera.t, want.camera.t, atol=1e-12)
            assert (got.camera.width, got.camera.height) == (64, 48)
            np.testing.assert_array_equal(got.image, quantised(want.image))
            np.testing.assert_array_equal(got.mask, want.mask)
            uv_got, _ = got.camera.project(POINT)
            uv_want, _ = want.camera.project(POINT)
            np.testing.assert_allclose(uv_got, uv_want, atol=1e-6)


def test_image_scale_halves_images_and_intrinsics(tmp_path, known_views, quantised):
    root = write_by_hand(tmp_path / "ds", known_views)
    half = load(root, image_scale=0.5)
    for got, want in zip(half.views, known_views, strict=True):
        assert got.image.shape == (24, 32, 3) and got.mask.shape == (24, 32)
        assert (got.camera.width, got.camera.height) == (32, 24)
        np.testing.assert_allclose(got.camera.K[:2], want.camera.K[:2] / 2, atol=1e-9)
        uv_got, _ = got.camera.project(POINT)
        uv_want, _ = want.camera.project(POINT)
        np.testing.assert_allclose(uv_got, uv_want / 2, atol=1e-6)
        # Area downscaling: each output pixel is the mean of a 2×2 block of the quantised input.
        blocks = quantised(want.image).reshape(24, 2, 32, 2, 3).mean(axis=(1, 3))
        np.testing.assert_allclose(got.image, blocks, atol=1e-6)


def test_write_then_load_is_lossless(tmp_path, known_views, quantised):
    dst = nds.write(known_views, BBOX, tmp_path / "out")
    scene = load(dst)
    np.testing.assert_array_equal(scene.bbox, BBOX)
    for got, want in zip(scene.views, known_views, strict=True):
        assert got.name == want.name
        np.testing.assert_array_equal(got.camera.K, want.camera.K)
        np.testing.assert_array_equal(got.camera.R, want.camera.R)
        np.testing.assert_array_equal(got.camera.t, want.camera.t)
        np.testing.assert_array_equal(got.image, quantised(want.image))
        np.testing.assert_array_equal(got.mask, want.mask)
    # A second conversion of what was read changes nothing at all.
    again = load(nds.write(scene, None, tmp_path / "again"))
    for a, b in zip(again.views, scene.views, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.camera.K, b.camera.K)
        np.testing.assert_array_equal(a.camera.t, b.camera.t)
    np.testing.assert_array_equal(again.bbox, BBOX)


def test_write_makes_unique_safe_file_names(tmp_path, known_views):
    a, b = known_views[:2]
    views = [View("cam/1", a.image, a.mask, a.camera), View("cam/1", b.image, b.mask, b.camera)]
    scene = load(nds.write(views, BBOX, tmp_path / "out"))
    assert [v.name for v in scene.views] == ["cam_1", "cam_1_2"]
    np.testing.assert_array_equal(scene.views[1].camera.R, b.camera.R)


def test_write_into_empty_folder_leaves_no_temporary_files(tmp_path, known_views):
    dst = tmp_path / "out"
    dst.mkdir()
    nds.write(known_views[:2], BBOX, dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert len(list(dst.glob("*_k.txt"))) == 2 and (dst / "bbox.txt").is_file()


def test_write_refuses_non_empty_destination_and_changes_nothing(tmp_path, known_views):
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty") as err:
        nds.write(known_views, BBOX, dst)
    assert err.value.path == dst
    assert [p.name for p in dst.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_write_refuses_bad_bbox(tmp_path, known_views):
    with pytest.raises(DatasetError, match="bounding box"):
        nds.write(known_views, BBOX[::-1], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rgb_png_without_alpha_gets_all_ones_mask_and_a_warning(tmp_path, known_views, caplog):
    root = write_by_hand(tmp_path / "ds", known_views)
    iio.imwrite(root / "view_001.png", _to_uint8(known_views[1].image))
    with caplog.at_level(logging.WARNING):
        scene = load(root)
    assert (scene.views[1].mask == 1).all()
    assert "all-ones" in caplog.text and str(root) in caplog.text


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


BAD_INPUTS: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "missing image": ("view_001.png", lambda p: p.unlink(), "missing"),
    "truncated image": ("view_001.png", _truncate, "decode"),
    "K with NaN": ("view_002_k.txt", lambda p: p.write_text("nan 0 32\n0 60 24\n0 0 1\n"), "NaN"),
    "K not numbers": ("view_002_k.txt", lambda p: p.write_text("fx 0 32\n0 fy 24\n0 0 1\n"), "parse"),
    "K wrong shape": ("view_002_k.txt", lambda p: p.write_text("60 0 32\n0 60 24\n"), "3×3"),
    "K negative focal": ("view_002_k.txt", lambda p: p.write_text("-60 0 32\n0 60 24\n0 0 1\n"), "focal"),
    "R scaled": ("view_003_r.txt", lambda p: np.savetxt(p, 2 * np.eye(3)), "not a rotation"),
    "R reflection": ("view_003_r.txt", lambda p: np.savetxt(p, np.diag([1.0, 1.0, -1.0])), "not a rotation"),
    "R missing": ("view_003_r.txt", lambda p: p.unlink(), "missing"),
    "t two values": ("view_004_t.txt", lambda p: p.write_text("0.5 1.0\n"), "3 numbers"),
    "t Inf": ("view_004_t.txt", lambda p: p.write_text("0.5 inf 3\n"), "NaN or Inf"),
    "bbox wrong shape": ("bbox.txt", lambda p: p.write_text("0 0 0 1 1 1\n"), "2×3"),
    "bbox min above max": ("bbox.txt", lambda p: np.savetxt(p, BBOX[::-1]), "minimum"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_refused_naming_the_file(tmp_path, known_views, case):
    name, damage, words = BAD_INPUTS[case]
    root = write_by_hand(tmp_path / "ds", known_views)
    damage(root / name)
    with pytest.raises(DatasetError, match=words) as err:
        load(root)
    assert err.value.path == root / name
    assert name in str(err.value)
