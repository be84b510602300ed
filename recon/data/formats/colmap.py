"""COLMAP sparse models (text or binary) with their images and, when there is one, a mask folder.

Layout: the model (`cameras.txt` + `images.txt`, or `cameras.bin` + `images.bin`; points3D is not
needed) in `sparse/0/`, `sparse/` or the dataset folder itself; images in `images/` (or the folder);
masks in `masks/`, named like the image, like the image + `.png` (COLMAP's own mask convention,
`a.jpg` → `a.jpg.png`) or by the image's stem + `.png`. Without masks the images' alpha channel is
used, else all-ones masks with a warning.

Conventions: COLMAP stores world→camera poses as a unit quaternion (qw qx qy qz, Hamilton) and a
translation, x right, y down, z forward: exactly our R, t. Its image coordinates put the upper-left
*corner* of the image at (0, 0) and the centre of the upper-left pixel at (0.5, 0.5) (COLMAP's
documentation and its feature extractors agree), which is our convention too: K is taken as is.

Lenses: SIMPLE_PINHOLE and PINHOLE are used directly. SIMPLE_RADIAL, RADIAL and OPENCV are resampled
to the pinhole with the same K on load (images and masks alike); with all-zero distortion they are
pinholes already. Fisheye and other models are refused with the fix (COLMAP's image_undistorter).
The sparse points could bound the object, but they include background: the box is estimated from
the masks like for every other format without one.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.data import checks
from recon.data.formats._common import make_view, ones_mask, warn_no_masks
from recon.data.images import ImageScale, read_mask, read_pixels, resize, resolve_scale
from recon.data.paths import contained
from recon.data.scene import Loaded, View
from recon.data.undistort import RadialTangential, undistort
from recon.errors import DatasetError

log = logging.getLogger(__name__)

NAME = "colmap"
LOOKS_FOR = "a COLMAP sparse model (cameras + images, .txt or .bin) in sparse/0/, sparse/ or the folder"
KEY_FILE = "sparse/0/cameras.{txt,bin}"

# COLMAP's camera models: name → (model id in the binary format, number of parameters).
MODELS = {
    "SIMPLE_PINHOLE": (0, 3),
    "PINHOLE": (1, 4),
    "SIMPLE_RADIAL": (2, 4),
    "RADIAL": (3, 5),
    "OPENCV": (4, 8),
    "OPENCV_FISHEYE": (5, 8),
    "FULL_OPENCV": (6, 12),
    "FOV": (7, 5),
    "SIMPLE_RADIAL_FISHEYE": (8, 4),
    "RADIAL_FISHEYE": (9, 5),
    "THIN_PRISM_FISHEYE": (10, 12),
}
MODEL_NAMES = {model_id: name for name, (model_id, _) in MODELS.items()}
SUPPORTED = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
_MODEL_FILES = {".txt": ("cameras.txt", "images.txt"), ".bin": ("cameras.bin", "images.bin")}


@dataclass(frozen=True)
class ColmapCamera:
    """One COLMAP camera (intrinsics shared by images); `source` is the file it came from, for errors."""

    model: str
    width: int
    height: int
    params: np.ndarray
    source: Path


@dataclass(frozen=True)
class ColmapImage:
    """One registered image: world→camera quaternion (w, x, y, z) and translation, its camera and file name."""

    qvec: np.ndarray
    tvec: np.ndarray
    camera_id: int
    name: str
    source: Path


def detect(path: Path) -> Path | None:
    """The dataset folder (holding images/ and sparse/) for itself, its model folder or one of its model files."""
    path = Path(path)
    if path.is_file():
        if not any(path.name in names for names in _MODEL_FILES.values()):
            return None
        path = path.parent
    if not path.is_dir():
        return None
    if path.name == "sparse" or path.parent.name == "sparse":  # given the model folder: the dataset is above
        dataset = path.parent if path.name == "sparse" else path.parent.parent
        if _model_files(path) is not None or (path.name == "sparse" and _model_dir(dataset) is not None):
            return dataset
    return path if _model_dir(path) is not None else None


def read(root: Path, image_scale: ImageScale) -> Loaded:
    """Views in our convention: poses from the quaternions, lenses undistorted to pinholes."""
    root = Path(root)
    model_dir = _model_dir(root)
    if model_dir is None:
        raise DatasetError(root, f"no COLMAP model found (looked for {LOOKS_FOR})")
    cameras_file, images_file = _model_files(model_dir)
    if cameras_file.suffix == ".bin":
        cameras, images = read_cameras_bin(cameras_file), read_images_bin(images_file)
    else:
        cameras, images = read_cameras_txt(cameras_file), read_images_txt(images_file)
    if not images:
        raise DatasetError(images_file, "the model has no registered images")

    image_dir = root / "images" if (root / "images").is_dir() else root
    mask_dir = root / "masks" if (root / "masks").is_dir() else None
    views, unmasked = [], 0
    for image in sorted(images, key=lambda im: im.name):
        if image.camera_id not in cameras:
            raise DatasetError(
                image.source, f"image {image.name} refers to camera {image.camera_id}, which is not in the model"
            )
        view, masked = _view(image, cameras[image.camera_id], image_dir, mask_dir, image_scale)
        views.append(view)
        unmasked += not masked
    if unmasked:
        warn_no_masks(root, unmasked)
    return Loaded(views)


def _view(
    image: ColmapImage, cam: ColmapCamera, image_dir: Path, mask_dir: Path | None, scale: ImageScale
) -> tuple[View, bool]:
    """One image as a pinhole View, and whether it had a mask (file or alpha)."""
    K, lens = intrinsics(cam)
    image_path = contained(image_dir, image_dir / image.name, image.source, "image name")
    pixels = read_pixels(image_path)
    if pixels.shape[:2] != (cam.height, cam.width):
        raise DatasetError(
            image_path,
            f"image is {pixels.shape[1]}×{pixels.shape[0]} but its COLMAP camera says {cam.width}×{cam.height}",
        )
    rgb = np.repeat(pixels[:, :, :1], 3, axis=2) if pixels.shape[2] == 1 else pixels[:, :, :3]
    masked = True
    if mask_dir is not None:
        mask_path = contained(mask_dir, _mask_file(mask_dir, image.name), image.source, "mask of image")
        mask = read_mask(mask_path)
        checks.same_size(mask_path, "mask", rgb, mask)
    elif pixels.shape[2] == 4:
        mask = pixels[:, :, 3]
    else:
        mask, masked = ones_mask(rgb), False
    camera = checks.camera(image.source, K, rotation(image), image.tvec, cam.width, cam.height)
    scale = resolve_scale(scale, cam.width, cam.height)
    if scale != 1.0:  # resize first, then undistort at the size we keep (K scales, the lens does not)
        rgb, mask = resize(rgb, scale), resize(mask[:, :, None], scale)[:, :, 0]
        camera = camera.scaled(scale)
    if lens is not None:
        rgb = undistort(rgb, camera.K, lens)
        mask = undistort(mask[:, :, None], camera.K, lens)[:, :, 0]
    # Images in subfolders (a/x.jpg, b/x.jpg) keep distinct names.
    name = Path(image.name).with_suffix("").as_posix().replace("/", "_")
    return make_view(name, rgb, mask, camera, 1.0), masked


def intrinsics(cam: ColmapCamera) -> tuple[np.ndarray, RadialTangential | None]:
    """K and the lens to undistort (None for a pinhole), or a DatasetError for models we do not resample."""
    p = cam.params
    if cam.model not in SUPPORTED:
        raise DatasetError(
            cam.source,
            f"camera model {cam.model} is not supported (supported: {', '.join(SUPPORTED)}). "
            "Undistort the images first with `colmap image_undistorter --input_path <model> "
            "--image_path <images> --output_path <out>` and load <out>",
        )
    if cam.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        fx = fy = p[0]
        cx, cy = p[1], p[2]
    else:
        fx, fy, cx, cy = p[:4]
    lens = None
    if cam.model == "SIMPLE_RADIAL":
        lens = RadialTangential(k1=float(p[3]))
    elif cam.model == "RADIAL":
        lens = RadialTangential(k1=float(p[3]), k2=float(p[4]))
    elif cam.model == "OPENCV":
        lens = RadialTangential(k1=float(p[4]), k2=float(p[5]), p1=float(p[6]), p2=float(p[7]))
    if lens is not None and lens.is_identity:
        lens = None
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return K, lens


def rotation(image: ColmapImage) -> np.ndarray:
    """World→camera R from COLMAP's unit quaternion (w, x, y, z), refusing ones that are not unit length."""
    q = checks.finite(image.source, f"quaternion of {image.name}", image.qvec)
    norm = float(np.linalg.norm(q))
    if abs(norm - 1) > 1e-3:
        raise DatasetError(image.source, f"quaternion of {image.name} has length {norm:.4g}, not 1: not a rotation")
    w, x, y, z = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


# --- text model ---------------------------------------------------------------------------------


def _data_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) for every line that is not a comment; blank lines are kept (images.txt needs them)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"cannot read the model file ({exc})") from None
    return [(i + 1, line) for i, line in enumerate(text.splitlines()) if not line.lstrip().startswith("#")]


def read_cameras_txt(path: Path) -> dict[int, ColmapCamera]:
    """`CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]` per line."""
    cameras = {}
    for line_no, line in _data_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 4:
            raise DatasetError(
                path, f"line {line_no}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS…, got {line.strip()!r}"
            )
        model = fields[1]
        try:
            camera_id, width, height = int(fields[0]), int(fields[2]), int(fields[3])
            params = np.array([float(f) for f in fields[4:]])
        except ValueError:
            raise DatasetError(path, f"line {line_no}: non-numeric camera value in {line.strip()!r}") from None
        cameras[camera_id] = _camera(path, f"line {line_no}: ", model, width, height, params)
    return cameras


def read_images_txt(path: Path) -> list[ColmapImage]:
    """Two lines per image: `IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`, then its 2-D points (skipped)."""
    lines = _data_lines(path)
    images, i = [], 0
    while i < len(lines):
        line_no, line = lines[i]
        if not line.strip():  # only the points line may be blank; stray blank lines between images are skipped
            i += 1
            continue
        fields = line.split(maxsplit=9)
        if len(fields) != 10:
            raise DatasetError(
                path,
                f"line {line_no}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, got {len(fields)} fields",
            )
        try:
            values = np.array([float(f) for f in fields[1:8]])
            camera_id = int(fields[8])
        except ValueError:
            raise DatasetError(path, f"line {line_no}: non-numeric pose or camera id") from None
        name = fields[9].strip()
        if not np.isfinite(values).all():
            raise DatasetError(path, f"line {line_no} ({name}): pose contains NaN or Inf")
        images.append(ColmapImage(values[:4], values[4:], camera_id, name, path))
        i += 2
    return images


# --- binary model (little-endian, as COLMAP writes it) ----------------------------------------


class _Reader:
    """Sequential little-endian reads from a file's bytes; running past the end is a DatasetError."""

    def __init__(self, path: Path) -> None:
        try:
            self.data = path.read_bytes()
        except OSError as exc:
            raise DatasetError(path, f"cannot read the model file ({exc})") from None
        self.path, self.pos = path, 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        self._need(size)
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values

    def skip(self, size: int) -> None:
        self._need(size)
        self.pos += size

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            self._need(len(self.data) - self.pos + 1)
        raw, self.pos = self.data[self.pos:end], end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DatasetError(
                self.path, f"image name at byte {self.pos} is not valid UTF-8; is the file corrupt?"
            ) from None

    def _need(self, size: int) -> None:
        if self.pos + size > len(self.data):
            raise DatasetError(
                self.path,
                f"file is truncated or corrupt: needs {size} bytes at offset {self.pos}, "
                f"only {len(self.data) - self.pos} left (of {len(self.data)})",
            )


def read_cameras_bin(path: Path) -> dict[int, ColmapCamera]:
    """uint64 count, then per camera: int32 id, int32 model id, uint64 width, uint64 height, float64 params."""
    reader = _Reader(path)
    (count,) = reader.take("Q")
    cameras = {}
    for k in range(count):
        camera_id, model_id, width, height = reader.take("iiQQ")
        if model_id not in MODEL_NAMES:
            raise DatasetError(
                path, f"camera {camera_id}: unknown COLMAP camera model id {model_id}; is the file corrupt?"
            )
        model = MODEL_NAMES[model_id]
        params = np.array(reader.take(f"{MODELS[model][1]}d"))
        cameras[camera_id] = _camera(path, f"camera {camera_id}: ", model, width, height, params)
    return cameras


def read_images_bin(path: Path) -> list[ColmapImage]:
    """uint64 count, then per image: int32 id, 7 float64 (q, t), int32 camera id, name\\0,
    uint64 n and n 2-D points of 24 bytes (skipped)."""
    reader = _Reader(path)
    (count,) = reader.take("Q")
    images = []
    for _ in range(count):
        values = reader.take("i7di")
        name = reader.cstring()
        (points,) = reader.take("Q")
        reader.skip(24 * points)
        pose = np.array(values[1:8])
        if not np.isfinite(pose).all():
            raise DatasetError(path, f"image {name}: pose contains NaN or Inf")
        images.append(ColmapImage(pose[:4], pose[4:], int(values[8]), name, path))
    return images


# --- helpers -------------------------------------------------------------------------------------


def _camera(path: Path, where: str, model: str, width: int, height: int, params: np.ndarray) -> ColmapCamera:
    if model not in MODELS:
        raise DatasetError(
            path,
            f"{where}unknown camera model {model!r}; undistort the images with `colmap image_undistorter` "
            "and load its output",
        )
    expected = MODELS[model][1]
    if params.size != expected:
        raise DatasetError(path, f"{where}{model} needs {expected} parameters, got {params.size}")
    if width <= 0 or height <= 0:
        raise DatasetError(path, f"{where}image size {width}×{height} is not positive")
    checks.finite(path, f"{where}camera parameters", params)
    return ColmapCamera(model, int(width), int(height), params, path)


def _model_files(folder: Path) -> tuple[Path, Path] | None:
    """(cameras, images) files of a model in `folder`; binary wins when both are there (COLMAP's default)."""
    for suffix in (".bin", ".txt"):
        cameras, images = (folder / name for name in _MODEL_FILES[suffix])
        if cameras.is_file() and images.is_file():
            return cameras, images
    return None


def _model_dir(root: Path) -> Path | None:
    """The model folder: sparse/0/, sparse/ or the dataset folder itself, in that order."""
    for folder in (root / "sparse" / "0", root / "sparse", root):
        if folder.is_dir() and _model_files(folder) is not None:
            if folder == root / "sparse" / "0":
                others = sorted(p.name for p in folder.parent.iterdir() if p.is_dir() and p.name.isdigit())[1:]
                if others:
                    log.info("%s: using model sparse/0; other models (%s) are ignored", root, ", ".join(others))
            return folder
    return None


def _mask_file(mask_dir: Path, image_name: str) -> Path:
    candidates = [mask_dir / image_name, mask_dir / f"{image_name}.png", (mask_dir / image_name).with_suffix(".png")]
    for path in candidates:
        if path.is_file():
            return path
    raise DatasetError(
        candidates[1], f"mask for image {image_name} is missing (looked for {', '.join(p.name for p in candidates)})"
    )
