"""Validation shared by the loaders, so that every format refuses the same bad input the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.errors import DatasetError
from render.camera import Camera


def finite(path: Path, what: str, value: np.ndarray) -> np.ndarray:
    """`value` as float64, or a DatasetError if it holds NaN/Inf."""
    value = np.asarray(value, dtype=np.float64)
    if not np.isfinite(value).all():
        raise DatasetError(path, f"{what} contains NaN or Inf")
    return value


def rotation(path: Path, what: str, R: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """`R` if it is a proper rotation (RᵀR = I, det = +1) within `tol`, else a DatasetError."""
    R = finite(path, what, R)
    if R.shape != (3, 3):
        raise DatasetError(path, f"{what} must be 3×3, got shape {R.shape}")
    err = np.abs(R.T @ R - np.eye(3)).max()
    if err > tol or np.linalg.det(R) < 0:
        raise DatasetError(
            path, f"{what} is not a rotation (|RᵀR − I| = {err:.2g}, det = {np.linalg.det(R):.3f})"
        )
    return R


def intrinsics(path: Path, what: str, K: np.ndarray) -> np.ndarray:
    """`K` if it is an upper-triangular 3×3 with positive focal lengths."""
    K = finite(path, what, K)
    if K.shape != (3, 3):
        raise DatasetError(path, f"{what} must be 3×3, got shape {K.shape}")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or abs(K[2, 2]) < 1e-12:
        raise DatasetError(path, f"{what} has non-positive focal length or K[2,2] = 0")
    return K / K[2, 2]


def camera(path: Path, K: np.ndarray, R: np.ndarray, t: np.ndarray, width: int, height: int) -> Camera:
    """A validated Camera; `path` is named in any error."""
    t = finite(path, "translation", np.asarray(t, dtype=np.float64).reshape(-1))
    if t.shape != (3,):
        raise DatasetError(path, f"translation must have 3 values, got {t.size}")
    return Camera(intrinsics(path, "intrinsics K", K), rotation(path, "rotation R", R), t, width, height)


def same_size(path: Path, what: str, image: np.ndarray, mask: np.ndarray) -> None:
    """Refuse a mask whose size differs from its image's."""
    if image.shape[:2] != mask.shape[:2]:
        raise DatasetError(
            path, f"{what} size {mask.shape[1]}×{mask.shape[0]} differs from the image's {image.shape[1]}×{image.shape[0]}"
        )
