"""The one camera type: OpenCV pinhole, world→camera, pixel (0,0) at the top-left *corner*.

Conventions (see docs/architecture.md):
    x_c = R @ X + t            world → camera, x right, y down, z forward
    u   = K @ x_c / z          pixels; pixel centres sit at integer + 0.5

Clip space is built so that image row 0 is framebuffer row 0 in every backend
(NDC y = 2v/H - 1, no flip). A consequence: a counter-clockwise, outward face
seen from outside is *clockwise* in NDC, so rasterizers cull counter-clockwise
NDC triangles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True, eq=False)
class Camera:
    """A calibrated pinhole view.

    Attributes:
        K: (3, 3) float64 intrinsics in pixels.
        R: (3, 3) float64 world→camera rotation (orthonormal, det +1).
        t: (3,) float64 world→camera translation.
        width, height: image size in pixels.
    """

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        for name, shape in (("K", (3, 3)), ("R", (3, 3)), ("t", (3,))):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"Camera.{name} must have shape {shape}, got {value.shape}")
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates, -Rᵀt."""
        return -self.R.T @ self.t

    @property
    def world_to_camera(self) -> np.ndarray:
        """(4, 4) homogeneous [R t; 0 1]."""
        m = np.eye(4)
        m[:3, :3] = self.R
        m[:3, 3] = self.t
        return m

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points (N, 3) to pixels (N, 2); also returns camera depth z (N,)."""
        xc = np.asarray(points, dtype=np.float64) @ self.R.T + self.t
        z = xc[:, 2]
        uvw = xc @ self.K.T
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = uvw[:, :2] / z[:, None]
        return uv, z

    def scaled(self, scale: float) -> Camera:
        """The same camera for an image resized by `scale` (corner convention: K rows 0-1 scale)."""
        K = self.K.copy()
        K[:2] *= scale
        return Camera(K, self.R, self.t, round(self.width * scale), round(self.height * scale))

    def clip_matrix(self, near: float, far: float) -> np.ndarray:
        """(4, 4) world → clip matrix; NDC x = 2u/W - 1, y = 2v/H - 1, z in [-1, 1] over [near, far]."""
        W, H = self.width, self.height
        fx, s, cx = self.K[0]
        _, fy, cy = self.K[1]
        proj = np.array(
            [
                [2 * fx / W, 2 * s / W, 2 * cx / W - 1, 0.0],
                [0.0, 2 * fy / H, 2 * cy / H - 1, 0.0],
                [0.0, 0.0, (far + near) / (far - near), -2 * far * near / (far - near)],
                [0.0, 0.0, 1.0, 0.0],
            ]
        )
        return proj @ self.world_to_camera

    def near_far(self, points: np.ndarray, margin: float = 0.05) -> tuple[float, float]:
        """Near/far planes that enclose `points` (N, 3), e.g. a bounding box's corners."""
        _, z = self.project(points)
        far = float(z.max()) * (1 + margin) + 1e-6
        near = max(float(z.min()) * (1 - margin), far * 1e-4)
        return near, far

    @staticmethod
    def look_at(
        eye: np.ndarray,
        target: np.ndarray,
        up: np.ndarray,
        fov_deg: float,
        width: int,
        height: int,
    ) -> Camera:
        """A camera at `eye` looking at `target`, `up` pointing up in the image (−y)."""
        eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
        z = target - eye
        z /= np.linalg.norm(z)
        x = np.cross(z, up)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        R = np.stack([x, y, z])
        f = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
        K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
        return Camera(K, R, -R @ eye, width, height)


def to_clip(points: torch.Tensor, clip_matrix: torch.Tensor) -> torch.Tensor:
    """World points (..., 3) → homogeneous clip coordinates (..., 4), differentiable."""
    ones = torch.ones_like(points[..., :1])
    return torch.cat([points, ones], dim=-1) @ clip_matrix.transpose(-1, -2)


def clip_to_pixels(clip: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Clip coordinates (..., 4) → pixel coordinates (..., 2) in the corner convention."""
    ndc = clip[..., :2] / clip[..., 3:4]
    size = torch.tensor([width, height], dtype=clip.dtype, device=clip.device)
    return (ndc + 1) * 0.5 * size
