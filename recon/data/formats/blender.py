"""NeRF-synthetic / Blender: `transforms_{train,val,test}.json` with RGBA images.

One horizontal field of view (`camera_angle_x`, optionally `camera_angle_y`) for all frames, the
principal point at the image centre, and camera→world poses in OpenGL axes, converted here to the
design's OpenCV world→camera. The alpha channel is the mask; RGB is kept as stored (not composited
onto a background) because the mask already says which pixels are object. No bounding box is given.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from recon.data import images
from recon.data.formats import _nerf
from recon.data.formats._common import make_view, ones_mask, warn_no_masks
from recon.data.scene import Loaded, View
from recon.errors import DatasetError
from recon.jsonfile import read_json_object

NAME = "blender"
LOOKS_FOR = "transforms_train.json (or transforms_val/test.json) with camera_angle_x and frames"
KEY_FILE = "transforms_train.json"

SPLITS = ("train", "val", "test")
FILES = tuple(f"transforms_{split}.json" for split in SPLITS)


def detect(path: Path) -> Path | None:
    """The folder (loads the train split), or the split file itself when one is named."""
    path = Path(path)
    if path.is_file():
        return path if path.name in FILES else None
    if path.is_dir() and any((path / f).is_file() for f in FILES):
        return path
    return None


def read(root: Path, image_scale: images.ImageScale) -> Loaded:
    """The views of one split: the named file, or transforms_train.json of a folder."""
    json_path = root if root.is_file() else _train_split(root)
    data = read_json_object(json_path, DatasetError)
    angle_x = _angle(json_path, data, "camera_angle_x")
    angle_y = _angle(json_path, data, "camera_angle_y") if "camera_angle_y" in data else None
    views: list[View] = []
    unmasked = 0
    for i, frame in enumerate(_nerf.frames(json_path, data)):
        what = f"frames[{i}].transform_matrix"
        c2w = _nerf.matrix(json_path, frame.get("transform_matrix"), what)
        image_path = _nerf.frame_image(json_path, frame, i)
        rgb, alpha = images.read_rgb_and_alpha(image_path)
        height, width = rgb.shape[:2]
        fx = 0.5 * width / math.tan(angle_x / 2)
        fy = fx if angle_y is None else 0.5 * height / math.tan(angle_y / 2)
        K = np.array([[fx, 0.0, width / 2], [0.0, fy, height / 2], [0.0, 0.0, 1.0]])
        camera = _nerf.camera_from_gl(json_path, c2w, K, width, height, what)
        if alpha is None:
            unmasked += 1
            alpha = ones_mask(rgb)
        views.append(make_view(image_path.stem, rgb, alpha, camera, image_scale))
    if unmasked:
        warn_no_masks(json_path, unmasked)
    return Loaded(views, None)


def _train_split(folder: Path) -> Path:
    path = folder / "transforms_train.json"
    if not path.is_file():
        present = ", ".join(f for f in FILES if (folder / f).is_file())
        raise DatasetError(path, f"no train split in this folder (found {present}); pass the split file to load it")
    return path


def _angle(path: Path, data: dict, key: str) -> float:
    if key not in data:
        raise DatasetError(path, f"has no '{key}' (the horizontal field of view in radians)")
    angle = _nerf.number(path, data[key], f"'{key}'")
    if not 0 < angle < math.pi:
        raise DatasetError(path, f"'{key}' = {angle} is not a field of view in radians (0, π)")
    return angle
