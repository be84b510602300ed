"""Format detection and the checks every loaded scene passes, whatever its format."""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

import numpy as np

from recon.data.bbox import estimate_bbox
from recon.data.formats import blender, colmap, dtu, middlebury, nds, ngp
from recon.data.images import AutoScale, ImageScale
from recon.data.scene import Loaded, Scene, View
from recon.errors import DatasetError

log = logging.getLogger(__name__)


# Order matters only for folders matching several formats: the most specific first.
FORMATS: dict[str, ModuleType] = {
    m.NAME: m for m in (nds, dtu, blender, ngp, colmap, middlebury)
}


def detect(path: Path) -> tuple[str, Path]:
    """(format name, dataset root) for a folder or its main file, or a DatasetError naming, in one
    short line, the file of each format that was looked for (the README's table has the details)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(path, "no such file or folder")
    for name, fmt in FORMATS.items():
        root = fmt.detect(path)
        if root is not None:
            return name, root
    looked = ", ".join(fmt.KEY_FILE for fmt in FORMATS.values())
    raise DatasetError(path, f'not a dataset of a known format (looked for {looked}); see "Dataset formats" in the README')


def load(path: Path | str, image_scale: ImageScale = 1.0, format: str | None = None) -> Scene:
    """Read any supported dataset (folder or main file) into a Scene in the design's conventions.

    Args:
        path: dataset folder or its main file (e.g. transforms_train.json, cameras.npz).
        image_scale: resize factor applied to images and masks on load; K is scaled with them. An
            AutoScale picks the factor from the first image decoded (every image is decoded once);
            `Scene.image_scale` says which factor was used.
        format: force a format (a key of FORMATS) instead of detecting it.
    """
    path = Path(path)
    if isinstance(image_scale, AutoScale):
        image_scale = AutoScale(image_scale.max_side, image_scale.min_scale)  # a fresh choice per load
    elif not (0 < image_scale <= 4):
        raise DatasetError(path, f"image scale must be in (0, 4], got {image_scale}")
    if format is None:
        format, root = detect(path)
    else:
        if format not in FORMATS:
            raise DatasetError(path, f"unknown format {format!r}; known: {', '.join(FORMATS)}")
        root = FORMATS[format].detect(path)
        if root is None:
            raise DatasetError(path, f"not a {format} dataset (looked for {FORMATS[format].LOOKS_FOR})")
    loaded: Loaded = FORMATS[format].read(root, image_scale)
    _check_views(root, loaded.views)
    if loaded.bbox is not None:
        bbox, source = np.asarray(loaded.bbox, dtype=np.float64), "given"
    else:
        bbox, source = estimate_bbox(loaded.views, root), "estimated"
        log.info("no bounding box in %s; estimated %s from the masks", root, bbox.tolist())
    scale = image_scale.chosen if isinstance(image_scale, AutoScale) else float(image_scale)
    return Scene(tuple(loaded.views), bbox, source, format, root, image_scale=scale)


def _check_views(root: Path, views: list[View]) -> None:
    if not views:
        raise DatasetError(root, "the dataset has no views")
    sizes = {(v.camera.width, v.camera.height) for v in views}
    if len(sizes) > 1:
        raise DatasetError(root, f"views have mixed image sizes {sorted(sizes)}; resize them to one size first")
    for v in views:
        if v.image.shape[:2] != (v.camera.height, v.camera.width):
            raise DatasetError(root, f"view {v.name}: image size does not match its camera")
        if not (v.mask > 0.5).any():
            raise DatasetError(root, f"view {v.name}: the mask is empty (no pixel above 0.5); fix or remove that view")
