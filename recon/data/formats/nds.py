"""The NDS folder format: the project's own lossless interchange format, read and written.

Per view `NAME.png` (RGBA, alpha = mask), `NAME_k.txt` (3×3 K), `NAME_r.txt` (3×3 world→camera R),
`NAME_t.txt` (3 values t); optional `bbox.txt` (rows min xyz, max xyz). Cameras are already in the
design's convention, so reading is validation only; writing uses shortest round-trip float text so
that `reconstruct convert` loses nothing but the 8-bit image quantisation.
"""

from __future__ import annotations

import logging
import re
import shutil
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recon.data import checks, images
from recon.data.formats._common import make_view, natural_key, ones_mask, warn_no_masks
from recon.data.scene import Loaded, Scene, View
from recon.errors import DatasetError
from render.camera import Camera

log = logging.getLogger(__name__)

NAME = "nds"
LOOKS_FOR = "NAME.png with NAME_k.txt, NAME_r.txt, NAME_t.txt (optional bbox.txt)"
KEY_FILE = "NAME_k.txt"

_CAMERA_SUFFIXES = ("_k.txt", "_r.txt", "_t.txt")


def detect(path: Path) -> Path | None:
    """The folder if it holds at least one NAME_k.txt + NAME.png pair (or `path` is a file in such a folder)."""
    path = Path(path)
    if path.is_file():
        own = path.suffix.lower() == ".png" or path.name == "bbox.txt" or path.name.endswith(_CAMERA_SUFFIXES)
        return path.parent if own and _view_names(path.parent) else None
    if path.is_dir() and _view_names(path):
        return path
    return None


def read(root: Path, image_scale: images.ImageScale) -> Loaded:
    """Every view named by a NAME_k.txt in `root`; a view with a missing file is an error, not skipped."""
    names = sorted((k.name[: -len("_k.txt")] for k in root.glob("*_k.txt")), key=natural_key)
    views: list[View] = []
    unmasked = 0
    for name in names:
        png = root / f"{name}.png"
        if not png.is_file():
            raise DatasetError(png, f"image is missing (its camera {name}_k.txt exists); add it or remove {name}_*.txt")
        K = checks.intrinsics(root / f"{name}_k.txt", "K", _read_txt(root / f"{name}_k.txt", (3, 3)))
        R = checks.rotation(root / f"{name}_r.txt", "R", _read_txt(root / f"{name}_r.txt", (3, 3)))
        t = checks.finite(root / f"{name}_t.txt", "t", _read_txt(root / f"{name}_t.txt", (3,)))
        rgb, alpha = images.read_rgb_and_alpha(png)
        if alpha is None:
            unmasked += 1
            alpha = ones_mask(rgb)
        camera = Camera(K, R, t, rgb.shape[1], rgb.shape[0])
        views.append(make_view(name, rgb, alpha, camera, image_scale))
    if unmasked:
        warn_no_masks(root, unmasked)
    bbox_file = root / "bbox.txt"
    bbox = _read_bbox(bbox_file) if bbox_file.is_file() else None
    return Loaded(views, bbox)


def write(scene_or_views: Scene | Sequence[View], bbox: np.ndarray | None, dst: Path) -> Path:
    """Write views (and bbox.txt) as an NDS folder at `dst`, atomically; returns `dst`.

    Args:
        scene_or_views: a Scene, or views in the design's convention.
        bbox: (2, 3) min/max rows; None takes the Scene's. Always written.
        dst: a new folder, or an empty existing one; anything else is refused untouched.
    """
    dst = Path(dst)
    if isinstance(scene_or_views, Scene):
        views = list(scene_or_views.views)
        bbox = scene_or_views.bbox if bbox is None else bbox
    else:
        views = list(scene_or_views)
    if bbox is None:
        raise DatasetError(dst, "no bounding box to write; pass one (bbox.txt is always written)")
    bbox = checks.finite(dst / "bbox.txt", "bounding box", bbox)
    if bbox.shape != (2, 3) or (bbox[0] > bbox[1]).any():
        raise DatasetError(dst / "bbox.txt", f"bounding box must be rows min, max of shape (2, 3), got {bbox.tolist()}")
    if not views:
        raise DatasetError(dst, "no views to write")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise DatasetError(
            dst, "already exists and is not empty; choose a new folder or empty it (nothing was written)"
        )
    tmp = dst.parent / f".{dst.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        for name, view in zip(_file_names(views), views, strict=True):
            _write_view(tmp, name, view)
        _write_txt(tmp / "bbox.txt", bbox)
        if dst.exists():
            dst.rmdir()
        tmp.rename(dst)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetError(dst, f"cannot write the dataset ({exc.__class__.__name__}: {exc})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %d views to %s", len(views), dst)
    return dst


def _view_names(folder: Path) -> list[str]:
    """Names NAME with both NAME_k.txt and NAME.png: what makes a folder an NDS dataset."""
    names = (k.name[: -len("_k.txt")] for k in folder.glob("*_k.txt"))
    return [name for name in names if (folder / f"{name}.png").is_file()]


def _read_txt(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A whitespace-separated float table of exactly `shape` values (rows are not enforced for vectors)."""
    if not path.is_file():
        raise DatasetError(path, "file is missing")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loadtxt warns on empty files; the size check below reports it
            values = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"cannot parse numbers ({exc.__class__.__name__}: {exc})") from None
    if len(shape) == 1:
        values = values.reshape(-1)
    if values.shape != shape:
        want = "×".join(map(str, shape))
        raise DatasetError(path, f"expected {want} numbers, found shape {values.shape}")
    return values


def _read_bbox(path: Path) -> np.ndarray:
    bbox = checks.finite(path, "bounding box", _read_txt(path, (2, 3)))
    if (bbox[0] > bbox[1]).any():
        raise DatasetError(path, f"first row must be the minimum and second the maximum corner, got {bbox.tolist()}")
    return bbox


def _file_names(views: Sequence[View]) -> list[str]:
    """View names made safe as file stems and unique (a suffix _2, _3… on repeats)."""
    seen: set[str] = set()
    out = []
    for i, view in enumerate(views):
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", view.name).strip("._") or f"view_{i:03d}"
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base}_{n}"
        seen.add(name)
        out.append(name)
    return out


def _write_view(folder: Path, name: str, view: View) -> None:
    cam = view.camera
    if view.image.shape[:2] != (cam.height, cam.width) or view.mask.shape != view.image.shape[:2]:
        raise DatasetError(folder / f"{name}.png", "image, mask and camera sizes differ; cannot write this view")
    images.write_rgba(folder / f"{name}.png", view.image, view.mask)
    _write_txt(folder / f"{name}_k.txt", cam.K)
    _write_txt(folder / f"{name}_r.txt", cam.R)
    _write_txt(folder / f"{name}_t.txt", cam.t[None])


def _write_txt(path: Path, table: np.ndarray) -> None:
    """Shortest text that parses back to the same float64 (lossless, still readable)."""
    rows = np.atleast_2d(np.asarray(table, dtype=np.float64))
    path.write_text("".join(" ".join(repr(float(x)) for x in row) + "\n" for row in rows))
