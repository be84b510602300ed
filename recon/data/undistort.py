"""Resample images taken through a radial-tangential (OpenCV/Brown) lens onto the ideal pinhole with the same K.

The renderer only knows pinhole cameras, so distorted photos are warped once, on load. For every
pixel of the pinhole image the forward lens model gives the distorted source position (no
iterative inversion needed), and the source is sampled bilinearly there, all pixels at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class RadialTangential:
    """OpenCV's lens model: radial k1, k2, k3 (r², r⁴, r⁶) and tangential p1, p2, in normalised coordinates."""

    k1: float = 0.0
    k2: float = 0.0
    k3: float = 0.0
    p1: float = 0.0
    p2: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.k1 == self.k2 == self.k3 == self.p1 == self.p2 == 0.0

    def distort(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where the lens puts the ideal normalised point (x, y)."""
        r2 = x * x + y * y
        radial = 1 + r2 * (self.k1 + r2 * (self.k2 + r2 * self.k3))
        xd = x * radial + 2 * self.p1 * x * y + self.p2 * (r2 + 2 * x * x)
        yd = y * radial + self.p1 * (r2 + 2 * y * y) + 2 * self.p2 * x * y
        return xd, yd


def undistort(pixels: np.ndarray, K: np.ndarray, lens: RadialTangential) -> np.ndarray:
    """The (H, W, C) image as the pinhole camera K would see it; pixels the photo does not cover are 0.

    Pixel centres are at +0.5 (the design's corner convention), for K and for sampling alike.
    """
    if lens.is_identity:
        return pixels
    height, width = pixels.shape[:2]
    v, u = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    ideal = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(K).T
    xd, yd = lens.distort(ideal[..., 0] / ideal[..., 2], ideal[..., 1] / ideal[..., 2])
    source = np.stack([xd, yd, np.ones_like(xd)], axis=-1) @ K.T
    # grid_sample with align_corners=False: -1 and +1 are the outer edges of the image.
    grid = np.stack([2 * source[..., 0] / width - 1, 2 * source[..., 1] / height - 1], axis=-1)
    image = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1)[None]
    grid_t = torch.from_numpy(grid.astype(np.float32))[None]
    # Border padding keeps the outer half pixel clean; points the photo does not see are zeroed after.
    out = F.grid_sample(image, grid_t, mode="bilinear", padding_mode="border", align_corners=False)
    out = out[0].permute(1, 2, 0).contiguous().numpy()
    outside = (np.abs(grid) > 1).any(axis=-1)
    out[outside] = 0
    return out
