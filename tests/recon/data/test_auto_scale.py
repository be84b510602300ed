"""--image-scale auto: the factor comes from the first decoded image, and each image is decoded once."""

from __future__ import annotations

import logging

import imageio.v3 as iio
import numpy as np

from recon.data import AutoScale, load
from recon.data import images as images_module
from recon.data.formats import nds


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
    from recon.cli import _image_scale

    root = nds.write(known_views, np.array([[-1.0, -1, -1], [1, 1, 1]]), tmp_path / "ds")
    rgb = np.round(known_views[1].image * 255).astype(np.uint8)
    iio.imwrite(root / "view_001.png", rgb)  # no alpha: all-ones mask and a warning
    policy = _image_scale("auto", "cpu")
    assert isinstance(policy, AutoScale) and _image_scale("auto", "cuda") == 1.0 and _image_scale("0.5", "cpu") == 0.5
    with caplog.at_level(logging.WARNING):
        scene = load(root, image_scale=policy)
    assert scene.image_scale == 1.0  # 64 px already fits the CPU default
    assert caplog.text.count("all-ones") == 1
