"""What the Blender and instant-ngp/nerfstudio formats share: strict JSON values and OpenGL camera→world poses.

Both formats describe a view by a camera→world 4×4 in OpenGL axes (x right, y up, z backward) and
a `file_path` relative to the JSON file. JSON from the wild has wrong types often enough that every
value is checked here, so a bad file ends in a DatasetError naming it instead of a KeyError.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from recon.data import checks
from recon.data.formats._common import IMAGE_SUFFIXES
from recon.data.paths import contained
from recon.errors import DatasetError
from render.camera import Camera

# OpenGL/Blender camera axes (y up, z backward) → OpenCV (y down, z forward): flip y and z.
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def number(path: Path, value: Any, what: str) -> float:
    """`value` as a finite float; strings, booleans, null, NaN and Inf are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DatasetError(path, f"{what} must be a number, got {json.dumps(value)[:40]}")
    if not math.isfinite(value):
        raise DatasetError(path, f"{what} is {value}; it must be a finite number")
    return float(value)


def frames(path: Path, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-empty list of frame objects."""
    value = data.get("frames")
    if value is None:
        raise DatasetError(path, "has no 'frames' list")
    if not isinstance(value, list) or not all(isinstance(f, dict) for f in value):
        raise DatasetError(path, "'frames' must be a list of objects")
    if not value:
        raise DatasetError(path, "'frames' is empty: the dataset has no views")
    return value


def matrix(path: Path, value: Any, what: str) -> np.ndarray:
    """A 4×4 (or 3×4, completed) camera→world matrix of plain numbers."""
    rows_ok = isinstance(value, list) and len(value) in (3, 4)
    if rows_ok:
        rows_ok = all(isinstance(row, list) and len(row) == 4 for row in value)
    if not rows_ok:
        got = json.dumps(value)[:60]
        raise DatasetError(path, f"{what} must be a 4×4 list of numbers (rows of 4), got {got}")
    m = np.array([[number(path, x, what) for x in row] for row in value], dtype=np.float64)
    if m.shape[0] == 3:
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    elif np.abs(m[3] - [0.0, 0.0, 0.0, 1.0]).max() > 1e-6:
        raise DatasetError(path, f"{what} has last row {m[3].tolist()}, expected [0, 0, 0, 1]")
    return m


def frame_image(path: Path, frame: dict[str, Any], index: int, key: str = "file_path") -> Path:
    """The image file a frame names, relative to the JSON's folder.

    Blender's exporter writes names without extension ("./train/r_0"); '.png' is added then.
    A name leading outside the JSON's folder is refused (`recon.data.paths`).
    """
    value = frame.get(key)
    if not isinstance(value, str) or not value:
        raise DatasetError(path, f"frames[{index}] has no '{key}' string")
    file = path.parent / value
    if file.suffix.lower() not in IMAGE_SUFFIXES and not file.is_file():
        file = file.with_name(file.name + ".png")
    return contained(path.parent, file, path, f"frames[{index}].{key}")


def camera_from_gl(
    path: Path, c2w_gl: np.ndarray, K: np.ndarray, width: int, height: int, what: str
) -> Camera:
    """Validated OpenCV world→camera from an OpenGL camera→world pose; `what` names the pose in errors."""
    c2w = c2w_gl @ GL_TO_CV
    R = checks.rotation(path, f"rotation part of {what}", c2w[:3, :3]).T
    t = -R @ c2w[:3, 3]
    return checks.camera(path, K, R, t, width, height)
