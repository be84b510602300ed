"""Reading images and masks with errors that name the file; optional downscaling on load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F

from recon.errors import DatasetError


def read_pixels(path: Path) -> np.ndarray:
    """Decode an image file to float32 (H, W, C) in [0, 1], C ∈ {1, 3, 4}."""
    if not path.is_file():
        raise DatasetError(path, "image file is missing")
    try:
        data = iio.imread(path)
    except Exception as exc:  # imageio raises many types for corrupt/truncated files
        raise DatasetError(path, f"cannot decode image ({exc.__class__.__name__}: {exc}); is it truncated or not an image?") from None
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3 or data.shape[2] not in (1, 2, 3, 4):
        raise DatasetError(path, f"unsupported image layout {data.shape}; expected grey, RGB or RGBA")
    if data.shape[2] == 2:  # grey + alpha
        data = np.concatenate([data[:, :, :1]] * 3 + [data[:, :, 1:]], axis=2)
    if np.issubdtype(data.dtype, np.integer):
        pixels = data.astype(np.float32) / np.float32(np.iinfo(data.dtype).max)
    else:
        pixels = data.astype(np.float32)
    if not np.isfinite(pixels).all():
        raise DatasetError(path, "image contains NaN or Inf values")
    return pixels


# Default image size on the CPU: long side at most this many pixels as loaded; the session works
# on them halved until its last stage (NDSConfig.coarse_images), so at ≤ 200 px for most of a run.
CPU_MAX_SIDE = 400


@dataclass
class AutoScale:
    """An image scale chosen from the images themselves: halve until the long side is ≤ `max_side`.

    Loaders resolve it on the first image they decode (`resolve_scale`), so a dataset whose size
    is not known in advance is still decoded once; every later image gets the same factor (a
    dataset of mixed sizes is refused by `load` anyway). `chosen` records the factor used.
    """

    max_side: int
    min_scale: float = 1 / 64
    chosen: float | None = None

    def for_size(self, width: int, height: int) -> float:
        scale = 1.0
        while max(width, height) * scale > self.max_side and scale > self.min_scale:
            scale /= 2
        return scale


ImageScale = float | AutoScale


def resolve_scale(scale: ImageScale, width: int, height: int) -> float:
    """The factor to resize an image of width × height by: `scale` itself, or what AutoScale picks."""
    if isinstance(scale, AutoScale):
        if scale.chosen is None:
            scale.chosen = scale.for_size(width, height)
        return scale.chosen
    return float(scale)


def resize(pixels: np.ndarray, scale: float) -> np.ndarray:
    """Area-downscale (or bilinear-upscale) an (H, W, C) image by `scale`; identity for 1."""
    if scale == 1.0:
        return pixels
    h, w = pixels.shape[:2]
    size = (round(h * scale), round(w * scale))
    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None]
    mode = "area" if scale < 1 else "bilinear"
    y = F.interpolate(x, size=size, mode=mode)
    return y[0].permute(1, 2, 0).contiguous().numpy()


def read_rgb_and_alpha(path: Path, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, 3) RGB and, when the file has one, (H, W) alpha; both resized by `scale`."""
    pixels = resize(read_pixels(path), scale)
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2), None
    rgb = np.ascontiguousarray(pixels[:, :, :3])
    alpha = np.ascontiguousarray(pixels[:, :, 3]) if pixels.shape[2] == 4 else None
    return rgb, alpha


def read_mask(path: Path, scale: float = 1.0) -> np.ndarray:
    """A mask file (grey, RGB or RGBA; alpha wins when present) as (H, W) float32 in [0, 1]."""
    pixels = resize(read_pixels(path), scale)
    if pixels.shape[2] == 4:
        return np.ascontiguousarray(pixels[:, :, 3])
    return np.ascontiguousarray(pixels[:, :, :3].max(axis=2) if pixels.shape[2] == 3 else pixels[:, :, 0])


def write_rgba(path: Path, image: np.ndarray, mask: np.ndarray) -> None:
    """Write RGB + mask as an 8-bit RGBA PNG."""
    rgba = np.concatenate([image, mask[:, :, None]], axis=2)
    iio.imwrite(path, np.round(np.clip(rgba, 0, 1) * 255).astype(np.uint8))
