"""Middlebury multi-view stereo (Seitz et al. 2006): `<name>_par.txt` cameras beside the photos.

The par file's first line is the image count N, then one line per image:
`name k11 k12 k13 k21 k22 k23 k31 k32 k33 r11 r12 r13 r21 r22 r23 r31 r32 r33 t1 t2 t3`,
P = K [R | t], world→camera, image origin top-left — our convention but for the pixel centre.

Pixel centres: the README only says "The image origin is top-left". We read it as the centre of
the top-left pixel being (0, 0), the convention of the Matlab calibration toolbox of the time, i.e.
pixel centres at integers; ours sit at integer + 0.5, so 0.5 is added to cx and cy. This is a
reading, not something the data can confirm: half a pixel is below the calibration's own error.

No masks ship. A `masks/` (or `mask/`) folder beside the par file is used when present (files named
like the image, or its stem + .png); otherwise masks are estimated with the dataset authors' recipe
(black background: threshold 0.19, dilate 10 px, erode 7 px) and a warning says so. The list of images
with good silhouettes (`*_good_silhouette_images.txt`) is reported, not acted on: all views are kept.
The READMEs' tight bounding boxes are prose, not data: the box is estimated from the masks.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from recon.data import checks
from recon.data.formats._common import make_view
from recon.data.images import ImageScale, read_mask, read_pixels
from recon.data.scene import Loaded
from recon.errors import DatasetError

log = logging.getLogger(__name__)

NAME = "middlebury"
LOOKS_FOR = "a Middlebury *_par.txt camera file (name, K, R, t per line)"
KEY_FILE = "*_par.txt"

PIXEL_CENTER_SHIFT = 0.5  # Middlebury pixel centres are at integers; ours at integer + 0.5
THRESHOLD = 0.19  # the authors' silhouette recipe (dataset README): intensity threshold…
DILATE = 10  # …then dilate by this many pixels…
ERODE = 7  # …then erode by this many
_FIELDS = 1 + 9 + 9 + 3


def detect(path: Path) -> Path | None:
    """The par file itself, or a folder holding one (or more: `read` then asks which)."""
    path = Path(path)
    if path.is_file() and path.name.endswith("_par.txt"):
        return path
    if path.is_dir() and any(path.glob("*_par.txt")):
        return path
    return None


def read(root: Path, image_scale: ImageScale) -> Loaded:
    """Views in our convention; masks from a mask folder or from the authors' threshold recipe."""
    par = _par_file(Path(root))
    folder = par.parent
    mask_dir = next((folder / d for d in ("masks", "mask") if (folder / d).is_dir()), None)
    entries = _parse(par)
    _report_good_silhouettes(par, [e[1] for e in entries])
    views = []
    for line_no, name, K, R, t in entries:
        image_path = folder / name
        pixels = read_pixels(image_path)
        rgb = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[:, :, :3]
        height, width = rgb.shape[:2]
        K = K.copy()
        K[:2, 2] += PIXEL_CENTER_SHIFT * K[2, 2]
        try:
            camera = checks.camera(par, K, R, t, width, height)
        except DatasetError as exc:
            raise DatasetError(par, f"line {line_no} ({name}): {exc.message}") from None
        if mask_dir is not None:
            mask_path = _mask_file(mask_dir, name)
            mask = read_mask(mask_path)
            checks.same_size(mask_path, "mask", rgb, mask)
        else:
            mask = silhouette(rgb)
        views.append(make_view(Path(name).stem, rgb, mask, camera, image_scale))
    if mask_dir is None:
        log.warning(
            "%s: no mask folder; masks estimated from the black background (threshold %.2f, dilate %d px, "
            "erode %d px, the dataset authors' recipe). Shadows on the object can cut into them",
            par, THRESHOLD, DILATE, ERODE,
        )
    return Loaded(views)


def silhouette(rgb: np.ndarray) -> np.ndarray:
    """The authors' recipe: brightest channel above 0.19, dilated by 10 px, eroded by 7 px (square).

    Taking the brightest channel keeps dark but coloured object pixels; the net 3 px growth closes
    small dark gaps, which errs on the side of a conservative (larger) hull. The morphology runs on
    a canvas padded with background, as if the image went on: an object leaving the frame is not
    eroded at the border, and one merely near the border is not glued to it.
    """
    fg = np.pad(rgb.max(axis=2) > THRESHOLD, DILATE)
    fg = _dilate(fg, DILATE)
    fg = ~_dilate(~fg, ERODE)  # erosion
    return fg[DILATE:-DILATE, DILATE:-DILATE].astype(np.float32)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilation by a (2r+1)² square: separable window sums from cumulative sums (outside = background)."""
    k = 2 * radius + 1
    for axis in (0, 1):
        widths = [(0, 0), (0, 0)]
        widths[axis] = (radius + 1, radius)
        counts = np.cumsum(np.pad(mask, widths).astype(np.int32), axis=axis)
        upper = counts[k:] if axis == 0 else counts[:, k:]
        lower = counts[:-k] if axis == 0 else counts[:, :-k]
        mask = (upper - lower) > 0
    return mask


def _par_file(root: Path) -> Path:
    if root.is_file():
        return root
    found = sorted(root.glob("*_par.txt"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise DatasetError(root, f"expected one *_par.txt camera file, found {names}; pass the one you mean")
    return found[0]


def _parse(par: Path) -> list[tuple[int, str, np.ndarray, np.ndarray, np.ndarray]]:
    """(line number, image name, K, R, t) per image line, every format error naming the line."""
    try:
        lines = par.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(par, f"cannot read the camera file ({exc})") from None
    lines = [(i + 1, line.split()) for i, line in enumerate(lines) if line.strip()]
    if not lines:
        raise DatasetError(par, "the camera file is empty")
    first_no, first = lines[0]
    if len(first) != 1 or not first[0].isdigit():
        raise DatasetError(par, f"line {first_no}: expected the number of images, got {' '.join(first)!r}")
    count = int(first[0])
    entries = []
    for line_no, fields in lines[1:]:
        if len(fields) != _FIELDS:
            raise DatasetError(
                par,
                f"line {line_no}: expected {_FIELDS} columns (name, 9 of K, 9 of R, 3 of t), got {len(fields)}",
            )
        try:
            values = np.array([float(f) for f in fields[1:]])
        except ValueError:
            raise DatasetError(par, f"line {line_no}: non-numeric camera value") from None
        if not np.isfinite(values).all():
            raise DatasetError(par, f"line {line_no} ({fields[0]}): camera values contain NaN or Inf")
        entries.append((line_no, fields[0], values[:9].reshape(3, 3), values[9:18].reshape(3, 3), values[18:]))
    if len(entries) != count:
        raise DatasetError(par, f"the first line announces {count} images but {len(entries)} lines follow")
    return entries


def _mask_file(mask_dir: Path, image_name: str) -> Path:
    candidates = [mask_dir / image_name, mask_dir / f"{image_name}.png", mask_dir / f"{Path(image_name).stem}.png"]
    for path in candidates:
        if path.is_file():
            return path
    raise DatasetError(candidates[0], f"mask for {image_name} is missing (the folder {mask_dir.name}/ has masks)")


def _report_good_silhouettes(par: Path, names: list[str]) -> None:
    """Name the views the dataset says have poor silhouettes; they are kept (their photos still count)."""
    listing = par.with_name(par.name.replace("_par.txt", "_good_silhouette_images.txt"))
    if listing.is_file():
        good = set(listing.read_text().split())
        poor = [n for n in names if n not in good]
        if poor:
            log.info(
                "%s: %s lists these views as having poor silhouettes (kept): %s",
                par.parent, listing.name, ", ".join(poor),
            )
