"""Middlebury multi-view: par-file cameras (pixel centres at integers there), masks by the authors' recipe."""

from __future__ import annotations

import logging
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from recon.data import detect, load
from recon.data.formats import middlebury
from recon.data.scene import View
from recon.errors import DatasetError


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def write_middlebury(folder: Path, views: list[View], name: str = "thing") -> Path:
    """Photos on black (as the dataset's) and `<name>_par.txt`, K in Middlebury's integer-centre pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [str(len(views))]
    for v in views:
        iio.imwrite(folder / f"{v.name}.png", _u8(v.image * v.mask[:, :, None]))
        K = v.camera.K.copy()
        K[:2, 2] -= 0.5  # ours has pixel centres at +0.5, Middlebury's at integers
        values = [*K.ravel(), *v.camera.R.ravel(), *v.camera.t]
        lines.append(" ".join([f"{v.name}.png"] + [f"{x:.17g}" for x in values]))
    par = folder / f"{name}_par.txt"
    par.write_text("\n".join(lines) + "\n")
    return par


def _square_dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Reference dilation by a (2r+1)² square, written as a plain max over shifts."""
    padded = np.pad(mask, r)
    h, w = mask.shape
    return np.max([padded[dy:dy + h, dx:dx + w] for dy in range(2 * r + 1) for dx in range(2 * r + 1)], axis=0)


def test_round_trip_with_estimated_masks(tmp_path, known_views, caplog):
    par = write_middlebury(tmp_path / "thing", known_views)
    with caplog.at_level(logging.WARNING):
        scene = load(tmp_path / "thing", image_scale=1.0)
    assert "masks estimated" in caplog.text
    assert scene.format == "middlebury" and scene.bbox_source == "estimated"
    assert len(scene.views) == len(known_views)
    for got, want in zip(scene.views, known_views):
        assert got.name == want.name
        np.testing.assert_allclose(got.camera.K, want.camera.K, atol=1e-12)  # cx, cy gained the half pixel
        np.testing.assert_allclose(got.camera.R, want.camera.R, atol=1e-12)
        np.testing.assert_allclose(got.camera.t, want.camera.t, atol=1e-12)
        np.testing.assert_allclose(got.image, want.image * want.mask[:, :, None], atol=0.6 / 255)
        # The recipe grows the silhouette by 3 px net (dilate 10, erode 7) and never loses any of it.
        truth = want.mask > 0.5
        got_mask = got.mask > 0.5
        assert np.all(got_mask[truth])
        assert np.all(_square_dilate(truth, 3)[got_mask])
    assert detect(par) == ("middlebury", par)


def test_mask_folder_is_used_when_present(tmp_path, known_views, caplog):
    write_middlebury(tmp_path, known_views)
    (tmp_path / "masks").mkdir()
    for v in known_views:
        iio.imwrite(tmp_path / "masks" / f"{v.name}.png", _u8(v.mask))
    with caplog.at_level(logging.WARNING):
        views = middlebury.read(tmp_path, 1.0).views
    assert "estimated" not in caplog.text
    for got, want in zip(views, known_views):
        np.testing.assert_array_equal(got.mask, want.mask)


def test_image_scale(tmp_path, known_views):
    write_middlebury(tmp_path, known_views)
    view = middlebury.read(tmp_path, 0.5).views[0]
    want = known_views[0].camera
    assert view.image.shape == (want.height // 2, want.width // 2, 3)
    assert view.mask.shape == (want.height // 2, want.width // 2)
    np.testing.assert_allclose(view.camera.K[:2], want.K[:2] * 0.5)


def test_silhouette_recipe():
    """Threshold 0.19 on the brightest channel, dilate 10, erode 7: gaps close, edges grow 3 px, borders stay.

    The expected result is the recipe on an unbounded canvas (`silhouette`'s padding): the blob that
    leaves the frame keeps its border pixels, and the square does not grow to the border.
    """
    rgb = np.zeros((60, 80, 3), np.float32)
    rgb[20:40, 20:40, 1] = 0.5  # green square: only one channel is bright
    rgb[29:31, 20:40] = 0.1  # a 2-px dark stripe (a shadow) across it
    rgb[0:10, 0:10, 0] = 0.18  # just below the threshold: background
    rgb[50:60, 70:80, 2] = 0.9  # touching the image corner
    rgb[5:10, 62:67] = 0.6  # near the top border, but not touching it
    mask = middlebury.silhouette(rgb)
    expected = np.zeros((60, 80), bool)
    expected[17:43, 17:43] = True
    expected[47:60, 67:80] = True  # grown inwards only: the border does not erode it
    expected[2:13, 59:70] = True  # grown by 3 px like the square, not glued to the border
    np.testing.assert_array_equal(mask > 0.5, expected)


# --- refusals: each names the file (and the line) at fault --------------------------------------


def _edit_line(par: Path, index: int, edit) -> None:
    lines = par.read_text().splitlines()
    lines[index] = edit(lines[index])
    par.write_text("\n".join(lines) + "\n")


def test_wrong_column_count_names_the_line(tmp_path, known_views):
    par = write_middlebury(tmp_path, known_views)
    _edit_line(par, 2, lambda line: " ".join(line.split()[:-1]))
    with pytest.raises(DatasetError, match="line 3: expected 22 columns") as info:
        middlebury.read(tmp_path, 1.0)
    assert info.value.path == par


def test_nan_and_non_rotation_are_refused(tmp_path, known_views):
    par = write_middlebury(tmp_path, known_views)
    original = par.read_text()
    _edit_line(par, 1, lambda line: line.replace(line.split()[-1], "nan"))
    with pytest.raises(DatasetError, match="line 2 .*NaN") as info:
        middlebury.read(tmp_path, 1.0)
    assert info.value.path == par

    par.write_text(original)

    def scale_rotation(line: str) -> str:
        f = line.split()
        return " ".join(f[:10] + [repr(2 * float(x)) for x in f[10:19]] + f[19:])

    _edit_line(par, 4, scale_rotation)
    with pytest.raises(DatasetError, match="line 5 \\(view_003.png\\): rotation R is not a rotation") as info:
        middlebury.read(tmp_path, 1.0)
    assert info.value.path == par


def test_count_mismatch_and_bad_header_are_refused(tmp_path, known_views):
    par = write_middlebury(tmp_path, known_views)
    _edit_line(par, 0, lambda line: "7")
    with pytest.raises(DatasetError, match="announces 7 images but 6"):
        middlebury.read(par, 1.0)
    _edit_line(par, 0, lambda line: "six")
    with pytest.raises(DatasetError, match="line 1: expected the number of images"):
        middlebury.read(par, 1.0)
    par.write_text("")
    with pytest.raises(DatasetError, match="empty") as info:
        middlebury.read(par, 1.0)
    assert info.value.path == par


def test_missing_image_and_missing_mask_are_refused(tmp_path, known_views):
    write_middlebury(tmp_path, known_views)
    (tmp_path / "masks").mkdir()
    for v in known_views[:-1]:
        iio.imwrite(tmp_path / "masks" / f"{v.name}.png", _u8(v.mask))
    with pytest.raises(DatasetError, match="mask for view_005.png is missing") as info:
        middlebury.read(tmp_path, 1.0)
    assert info.value.path.parent == tmp_path / "masks"

    (tmp_path / f"{known_views[0].name}.png").unlink()
    with pytest.raises(DatasetError, match="missing") as info:
        middlebury.read(tmp_path, 1.0)
    assert info.value.path == tmp_path / f"{known_views[0].name}.png"


def test_several_par_files_ask_which(tmp_path, known_views):
    write_middlebury(tmp_path, known_views, "a")
    write_middlebury(tmp_path, known_views, "b")
    assert middlebury.detect(tmp_path) == tmp_path
    with pytest.raises(DatasetError, match="a_par.txt, b_par.txt"):
        middlebury.read(tmp_path, 1.0)
    assert len(middlebury.read(tmp_path / "b_par.txt", 1.0).views) == len(known_views)
