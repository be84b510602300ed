"""instant-ngp / nerfstudio `transforms.json`: per-file or per-frame pinhole intrinsics, optional lens distortion.

Poses are camera→world in OpenGL axes, as in Blender. Intrinsics (`fl_x`, `fl_y`, `cx`, `cy`, `w`,
`h`, else `camera_angle_x`) may sit at the top level or in a frame, the frame winning. Radial-
tangential distortion (OPENCV) is removed on load by resampling onto the pinhole with the same K,
because the renderer knows only pinholes; fisheye and other models are refused. `aabb_scale` is
instant-ngp's ray-marching extent, not the object's box, so no bounding box is returned.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from recon.data import checks, images
from recon.data.formats import _nerf
from recon.data.formats._common import make_view, ones_mask, warn_no_masks
from recon.data.scene import Loaded, View
from recon.data.undistort import RadialTangential, undistort
from recon.errors import DatasetError
from recon.jsonfile import read_json_object

NAME = "ngp"
LOOKS_FOR = "transforms.json (instant-ngp / nerfstudio: fl_x, fl_y, cx, cy, w, h, frames)"
KEY_FILE = "transforms.json"

FILE = "transforms.json"
_PINHOLE_MODELS = {"PINHOLE", "SIMPLE_PINHOLE"}
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def detect(path: Path) -> Path | None:
    """The folder holding transforms.json (given the folder or the file)."""
    path = Path(path)
    if path.is_file():
        return path.parent if path.name == FILE else None
    return path if (path / FILE).is_file() else None


def read(root: Path, image_scale: images.ImageScale) -> Loaded:
    """Every frame of transforms.json, undistorted to a pinhole when the lens has distortion."""
    json_path = root / FILE
    data = read_json_object(json_path, DatasetError)
    views: list[View] = []
    unmasked = 0
    for i, frame in enumerate(_nerf.frames(json_path, data)):
        params = _Params(json_path, data, frame, i)
        what = f"frames[{i}].transform_matrix"
        c2w = _nerf.matrix(json_path, frame.get("transform_matrix"), what)
        image_path = _nerf.frame_image(json_path, frame, i)
        rgb, alpha = images.read_rgb_and_alpha(image_path)
        height, width = rgb.shape[:2]
        K = _intrinsics(params, width, height, image_path)
        lens = _lens(params)
        camera = _nerf.camera_from_gl(json_path, c2w, K, width, height, what)
        mask = _mask(json_path, frame, i, rgb, alpha)
        if mask is None:
            unmasked += 1
            mask = ones_mask(rgb)
        if not lens.is_identity:
            both = undistort(np.concatenate([rgb, mask[:, :, None]], axis=2), camera.K, lens)
            rgb, mask = both[:, :, :3], both[:, :, 3]
        views.append(make_view(image_path.stem, rgb, mask, camera, image_scale))
    if unmasked:
        warn_no_masks(json_path, unmasked)
    return Loaded(views, None)


class _Params:
    """Frame-level value if present, else file-level; errors name the key where it was found."""

    def __init__(self, path: Path, top: dict[str, Any], frame: dict[str, Any], index: int) -> None:
        self.path, self.top, self.frame, self.index = path, top, frame, index

    def _where(self, key: str) -> tuple[dict[str, Any], str]:
        if key in self.frame:
            return self.frame, f"frames[{self.index}].'{key}'"
        return self.top, f"'{key}'"

    def number(self, key: str) -> float | None:
        obj, label = self._where(key)
        return _nerf.number(self.path, obj[key], label) if key in obj else None

    def text(self, key: str) -> str | None:
        obj, label = self._where(key)
        if key not in obj:
            return None
        if not isinstance(obj[key], str):
            raise DatasetError(self.path, f"{label} must be a string, got {obj[key]!r}")
        return obj[key]

    def flag(self, key: str) -> bool:
        obj, _ = self._where(key)
        return obj.get(key) is True


def _intrinsics(params: _Params, width: int, height: int, image_path: Path) -> np.ndarray:
    path = params.path
    w, h = params.number("w"), params.number("h")
    if (w is not None and w != width) or (h is not None and h != height):
        raise DatasetError(
            path,
            f"says the images are {w:g}×{h:g} but {image_path.name} is {width}×{height}; "
            "fix 'w'/'h' and the intrinsics, or use the original images",
        )
    fl_x = params.number("fl_x")
    if fl_x is None:
        fl_x = _focal_from_angle(params, "camera_angle_x", width)
    fl_y = params.number("fl_y")
    if fl_y is None:
        angle_y = params.number("camera_angle_y")
        fl_y = fl_x if angle_y is None else _focal_from_angle(params, "camera_angle_y", height)
    cx = params.number("cx")
    cy = params.number("cy")
    cx = width / 2 if cx is None else cx
    cy = height / 2 if cy is None else cy
    return np.array([[fl_x, 0.0, cx], [0.0, fl_y, cy], [0.0, 0.0, 1.0]])


def _focal_from_angle(params: _Params, key: str, size: int) -> float:
    angle = params.number(key)
    if angle is None:
        raise DatasetError(params.path, "has no focal length: give 'fl_x' (pixels) or 'camera_angle_x' (radians)")
    if not 0 < angle < math.pi:
        raise DatasetError(params.path, f"'{key}' = {angle} is not a field of view in radians (0, π)")
    return 0.5 * size / math.tan(angle / 2)


def _lens(params: _Params) -> RadialTangential:
    """The lens as a RadialTangential, or a DatasetError for models the renderer cannot use."""
    path = params.path
    model = params.text("camera_model")
    if params.flag("is_fisheye") or (model is not None and "FISHEYE" in model.upper()):
        raise DatasetError(
            path,
            f"fisheye cameras (camera_model={model!r}) are not supported; undistort the images to a pinhole "
            "first (e.g. colmap image_undistorter or nerfstudio's ns-process-data) and remove the k1..k4 keys",
        )
    if model is not None and model.upper() not in _PINHOLE_MODELS | {"OPENCV"}:
        raise DatasetError(path, f"camera_model {model!r} is not supported; use OPENCV, PINHOLE or SIMPLE_PINHOLE")
    coeffs = {key: params.number(key) or 0.0 for key in _DISTORTION_KEYS}
    nonzero = [key for key, value in coeffs.items() if value != 0.0]
    if nonzero and model is not None and model.upper() in _PINHOLE_MODELS:
        raise DatasetError(path, f"camera_model {model} has no distortion, yet {', '.join(nonzero)} are non-zero")
    if coeffs["k4"] != 0.0:
        raise DatasetError(
            path, "'k4' is non-zero: its meaning is not standard for OPENCV cameras, so it cannot be undistorted safely"
        )
    return RadialTangential(coeffs["k1"], coeffs["k2"], coeffs["k3"], coeffs["p1"], coeffs["p2"])


def _mask(
    json_path: Path, frame: dict[str, Any], index: int, rgb: np.ndarray, alpha: np.ndarray | None
) -> np.ndarray | None:
    """nerfstudio's per-frame `mask_path` (white = object), else the alpha channel, else None."""
    if "mask_path" not in frame:
        return alpha
    mask_path = _nerf.frame_image(json_path, frame, index, key="mask_path")
    mask = images.read_mask(mask_path)
    checks.same_size(mask_path, "mask", rgb, mask)
    return mask
