"""--image-scale auto: the factor comes from the first decoded image, and each image is decoded once;
resizing a view keeps its image, mask and camera in step."""

from __future__ import annotations

import logging

import imageio.v3 as iio
import numpy as np

from recon.data import AutoScale, load
from recon.data import images as images_module
from recon.data.formats import nds
from recon.data.scene import View
from render.camera import Camera


def test_auto_scale_halves_until_the_long_side_fits():
    assert AutoScale(200).for_size(800, 800) == 0.25
    assert AutoScale(200).for_size(256, 128) == 0.5
    assert AutoScale(200).for_size(200, 150) == 1.0
    assert AutoScale(1).for_size(10_000, 10) == 1 / 64  # never below min_scale


def test_load_decodes_every_image_once_and_reports_the_factor(tmp_path, known_views, monkeypatch):
    root = nds.write(known_views, np.array([[-1.0, -1, -1], [1, 1, 1]]), tmp_path / "ds")
    decoded = []
    real = images_module.read_pixels
    monkeypatch.setattr(images_module, "read_pixels", lambda path: decoded.append(path.name) or real(path))
    policy = AutoScale(40)  # the views are 64×48 → halved once
    scene = load(root, image_scale=policy)
    assert sorted(decoded) == sorted(f"{v.name}.png" for v in known_views)
    assert scene.image_scale == 0.5 and scene.resolution == (32, 24)
    assert policy.chosen is None  # load resolves a copy: the same policy can load another dataset
    assert load(root, image_scale=1.0).image_scale == 1.0


def test_cli_auto_scale_loads_once_so_warnings_appear_once(tmp_path, known_views, caplog):
    from recon.runs import resolution

    root = nds.write(known_views, np.array([[-1.0, -1, -1], [1, 1, 1]]), tmp_path / "ds")
    rgb = np.round(known_views[1].image * 255).astype(np.uint8)
    iio.imwrite(root / "view_001.png", rgb)  # no alpha: all-ones mask and a warning
    policy, changes = resolution(None, "cpu")  # None: --image-scale auto
    assert isinstance(policy, AutoScale) and changes["coarse_images"] is True
    assert resolution(None, "cuda") == (1.0, {}) and resolution(0.5, "cpu") == (0.5, {})
    with caplog.at_level(logging.WARNING):
        scene = load(root, image_scale=policy)
    assert scene.image_scale == 1.0  # 64 px already fits the CPU default
    assert caplog.text.count("all-ones") == 1


def test_a_scaled_view_keeps_image_mask_and_camera_in_step() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((6, 10, 3), dtype=np.float32)
    mask = (rng.random((6, 10)) > 0.5).astype(np.float32)
    K = np.array([[20.0, 0, 5.0], [0, 20.0, 3.0], [0, 0, 1]])
    view = View("v", image, mask, Camera(K, np.eye(3), np.array([0, 0, 4.0]), 10, 6))
    half = view.scaled(0.5)
    assert half.image.shape == (3, 5, 3) and half.mask.shape == (3, 5)
    assert (half.camera.width, half.camera.height) == (5, 3)
    assert np.allclose(half.camera.K, [[10, 0, 2.5], [0, 10, 1.5], [0, 0, 1]])
    assert np.allclose(half.image[0, 0], image[:2, :2].mean(axis=(0, 1)), atol=1e-6)  # 2×2 area mean
    assert np.isclose(half.mask[1, 2], mask[2:4, 4:6].mean())
    assert view.scaled(1.0) is view
