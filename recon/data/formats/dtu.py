"""IDR / NeuS DTU: `image/` + `mask/` PNGs and `cameras.npz` (or `cameras_sphere.npz`).

Each image i has `world_mat_i`, a projection P = K[R|t] (world→pixel, up to scale), decomposed here
into the design's K, R, t; cameras stay in the world frame. `scale_mat_0` maps the unit cube to the
world and so gives the bounding box. The npz is always read without pickle: an npz can carry
arbitrary code in pickled object arrays, and camera matrices never need them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from recon.data import checks, images
from recon.data.formats._common import image_files, make_view, ones_mask, warn_no_masks
from recon.data.scene import Loaded, View
from recon.errors import DatasetError

log = logging.getLogger(__name__)

NAME = "dtu"
LOOKS_FOR = "cameras.npz or cameras_sphere.npz beside an image/ (or images/) folder"
KEY_FILE = "cameras.npz"

NPZ_FILES = ("cameras.npz", "cameras_sphere.npz")
IMAGE_DIRS = ("image", "images")
MASK_DIRS = ("mask", "masks")


def detect(path: Path) -> Path | None:
    """The folder (given the folder), or the npz itself when a camera file is named."""
    path = Path(path)
    if path.is_file():
        return path if path.name in NPZ_FILES and _first_dir(path.parent, IMAGE_DIRS) else None
    if path.is_dir() and _first_dir(path, IMAGE_DIRS) and any((path / f).is_file() for f in NPZ_FILES):
        return path
    return None


def read(root: Path, image_scale: images.ImageScale) -> Loaded:
    """Images in natural name order, the i-th paired with world_mat_i and the i-th mask."""
    folder = root.parent if root.is_file() else root
    npz_path = root if root.is_file() else next(folder / f for f in NPZ_FILES if (folder / f).is_file())
    arrays = _load_npz(npz_path)
    image_dir = _first_dir(folder, IMAGE_DIRS)
    if image_dir is None:
        raise DatasetError(folder, "has no image/ folder")
    files = image_files(image_dir)
    if not files:
        raise DatasetError(image_dir, "holds no images")
    masks = _mask_files(folder, len(files))
    views: list[View] = []
    for i, image_path in enumerate(files):
        key = f"world_mat_{i}"
        if key not in arrays:
            raise DatasetError(
                npz_path, f"has no '{key}' for image {image_path.name} (image number {i} in name order)"
            )
        K, R, t = decompose(npz_path, key, arrays[key])
        rgb, _ = images.read_rgb_and_alpha(image_path)
        camera = checks.camera(npz_path, K, R, t, rgb.shape[1], rgb.shape[0])
        if masks is None:
            mask = ones_mask(rgb)
        else:
            mask = images.read_mask(masks[i])
            checks.same_size(masks[i], "mask", rgb, mask)
        views.append(make_view(image_path.stem, rgb, mask, camera, image_scale))
    if masks is None:
        warn_no_masks(folder, len(views))
    return Loaded(views, _bbox(npz_path, arrays))


def decompose(path: Path, key: str, P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K (K[2,2] = 1, positive diagonal), R (det +1), t with P ∝ K[R|t]; `path`/`key` name errors.

    P is only defined up to scale, sign included; the sign is chosen so that R is a rotation.
    """
    P = checks.finite(path, key, P)
    if P.shape == (4, 4):
        P = P[:3]
    if P.shape != (3, 4):
        raise DatasetError(path, f"'{key}' must be a 3×4 or 4×4 projection matrix, got shape {P.shape}")
    M = P[:, :3]
    det = np.linalg.det(M)
    if abs(det) < 1e-12 * max(1.0, np.abs(M).max()) ** 3:
        raise DatasetError(path, f"'{key}' is singular (its left 3×3 has rank < 3); not a camera projection")
    if det < 0:
        P, M = -P, -M
    K, R = _rq(M)
    signs = np.sign(np.diag(K))
    K, R = K * signs, signs[:, None] * R  # K D, D R with D = diag(signs), D² = I
    t = np.linalg.solve(K, P[:, 3])
    return K / K[2, 2], R, t


def _rq(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """M = U Q with U upper triangular and Q orthonormal, via QR of the row-reversed transpose."""
    flip = np.eye(3)[::-1]
    q, r = np.linalg.qr((flip @ M).T)
    return flip @ r.T @ flip, flip @ q.T


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of the npz, read eagerly so that a truncated member fails here, naming the file."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise DatasetError(path, f"cannot open ({exc.__class__.__name__}: {exc})") from None
    if magic != b"PK\x03\x04":
        raise DatasetError(path, "is not an npz archive (no zip header); is it truncated or a different file?")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: np.asarray(npz[name]) for name in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DatasetError(
                path, "holds pickled object arrays, which are refused for safety; save plain numeric arrays"
            ) from None
        raise DatasetError(path, f"cannot read camera arrays ({exc}); is the file truncated?") from None
    except Exception as exc:  # zipfile.BadZipFile, EOFError, OSError, zlib.error… for damaged files
        raise DatasetError(
            path, f"cannot read camera arrays ({exc.__class__.__name__}: {exc}); is the file truncated?"
        ) from None


def _bbox(path: Path, arrays: dict[str, np.ndarray]) -> np.ndarray | None:
    """The unit cube's corners mapped by scale_mat_0, as min/max rows; None when absent."""
    if "scale_mat_0" not in arrays:
        log.warning("%s has no scale_mat_0; the bounding box will be estimated from the masks", path)
        return None
    S = checks.finite(path, "scale_mat_0", arrays["scale_mat_0"])
    if S.shape != (4, 4):
        raise DatasetError(path, f"'scale_mat_0' must be 4×4, got shape {S.shape}")
    corners = np.array(np.meshgrid([-1.0, 1.0], [-1.0, 1.0], [-1.0, 1.0], [1.0], indexing="ij")).reshape(4, -1)
    mapped = S @ corners
    if np.any(np.abs(mapped[3]) < 1e-12):
        raise DatasetError(path, "'scale_mat_0' maps the unit cube to infinity; it must be an affine 4×4")
    xyz = (mapped[:3] / mapped[3]).T
    return np.stack([xyz.min(axis=0), xyz.max(axis=0)])


def _first_dir(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_dir()), None)


def _mask_files(folder: Path, count: int) -> list[Path] | None:
    mask_dir = _first_dir(folder, MASK_DIRS)
    if mask_dir is None:
        return None
    files = image_files(mask_dir)
    if len(files) != count:
        raise DatasetError(
            mask_dir, f"holds {len(files)} masks for {count} images; masks pair with images by name order, one each"
        )
    return files
