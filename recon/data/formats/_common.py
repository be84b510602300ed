"""Small pieces every loader needs: resizing a view consistently, default masks, natural file order."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from recon.data import images
from recon.data.scene import View
from render.camera import Camera

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr")


def make_view(name: str, image: np.ndarray, mask: np.ndarray, camera: Camera, scale: images.ImageScale) -> View:
    """A View whose image, mask and camera are all resized by `scale` (a factor or an AutoScale).

    Loaders read at full resolution (K is given for it) and scale here, once, so that the image
    size and the scaled camera's size come from the same round() and always agree.
    """
    scale = images.resolve_scale(scale, image.shape[1], image.shape[0])
    image = np.ascontiguousarray(np.clip(image, 0, 1), dtype=np.float32)
    mask = np.ascontiguousarray(np.clip(mask, 0, 1), dtype=np.float32)
    return View(name, image, mask, camera).scaled(scale)


def ones_mask(image: np.ndarray) -> np.ndarray:
    """An all-object mask shaped like `image`, for datasets without masks."""
    return np.ones(image.shape[:2], dtype=np.float32)


def warn_no_masks(where: Path, count: int) -> None:
    """One warning per dataset, not per view, when masks had to be made up."""
    log.warning(
        "%s: %d view(s) have no mask (no alpha channel or mask file); using all-ones masks, "
        "so the whole image counts as the object",
        where,
        count,
    )


def natural_key(name: str) -> list[int | str]:
    """Sort key that orders 'img2' before 'img10' (and equals plain order for zero-padded names)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def image_files(folder: Path) -> list[Path]:
    """Image files directly in `folder`, in natural name order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: natural_key(p.name))
