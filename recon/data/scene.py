"""The one dataset type: calibrated views with masks, a bounding box and where it all came from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.data.images import resize
from render.camera import Camera


@dataclass(frozen=True, eq=False)
class View:
    """One calibrated photo.

    Attributes:
        name: stem used in the NDS folder format and in messages.
        image: (H, W, 3) float32 RGB in [0, 1].
        mask: (H, W) float32 in [0, 1] (object = 1).
        camera: OpenCV world→camera pinhole (render.camera.Camera), sized like `image`.
    """

    name: str
    image: np.ndarray
    mask: np.ndarray
    camera: Camera

    def scaled(self, scale: float) -> View:
        """The view resized by `scale` (area average down): image, mask and camera kept in step.

        The image size and the camera's size come from the same round(), so they always agree.
        """
        if scale == 1.0:
            return self
        image = np.clip(resize(self.image, scale), 0, 1)
        mask = np.clip(resize(self.mask[:, :, None], scale)[:, :, 0], 0, 1)
        return View(self.name, np.ascontiguousarray(image), np.ascontiguousarray(mask), self.camera.scaled(scale))


@dataclass(frozen=True, eq=False)
class Scene:
    """Views in the design's one camera convention, plus a world-space bounding box.

    Attributes:
        views: the views, in the order of the source.
        bbox: (2, 3) float64 rows min, max in world units.
        bbox_source: "given" (from the dataset) or "estimated" (visual hull of the masks).
        format: name of the loader that read it (a key of recon.data.FORMATS).
        source: the folder or file it was read from.
        image_scale: the factor the images were resized by on load (what an automatic scale chose).
    """

    views: tuple[View, ...]
    bbox: np.ndarray
    bbox_source: str
    format: str
    source: Path
    image_scale: float = 1.0

    @property
    def resolution(self) -> tuple[int, int]:
        """(width, height) of the first view; loaders ensure all views share it."""
        cam = self.views[0].camera
        return cam.width, cam.height

    def normalization(self) -> tuple[np.ndarray, float]:
        """(centre, scale) mapping world → the cube [-1, 1]³: x_n = (x - centre) * scale."""
        lo, hi = self.bbox
        return (lo + hi) / 2, 2.0 / float(np.max(hi - lo))


@dataclass
class Loaded:
    """What a format's `read` returns: views in our convention, and the bbox if the dataset gives one."""

    views: list[View]
    bbox: np.ndarray | None = None
