"""Material balls: a unit sphere shaded by c(h, n, ω) with one feature h and its own n and ω.

Pure torch, no GL: each pixel's ray from a fixed perspective camera meets the sphere analytically.
Normals and view directions are in the run's normalised frame, the frame the shader learned its
lighting in, so the highlights on the ball are where the scene's lights put them. The default
camera looks from the front and a little above (+z, +y up), which suits y-up scenes such as the
demo; `view` and `up` change it. Edges are antialiased by supersampling.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from recon.shader import NeuralShader

DEFAULT_VIEW = (0.0, 0.35, 1.0)  # from the ball towards the camera
DEFAULT_UP = (0.0, 1.0, 0.0)
CAMERA_DISTANCE = 3.0  # in sphere radii: a mild perspective, so ω varies across the ball
FILL = 0.9  # the ball's diameter as a share of the image side
NEUTRAL = (0.5, 0.5, 0.5)


def _camera_rays(size: int, view: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera origin (3,) and unit ray directions (size, size, 3), row 0 at the top."""
    back = F.normalize(view, dim=0)
    right = torch.linalg.cross(up, back)
    if float(right.norm()) < 1e-6:
        raise ValueError("swatch: `up` must not be parallel to `view`")
    right = F.normalize(right, dim=0)
    true_up = torch.linalg.cross(back, right)
    half = math.tan(math.asin(1.0 / CAMERA_DISTANCE)) / FILL  # tan of half the field of view
    coords = (torch.arange(size, dtype=torch.float64) + 0.5) / size * 2.0 - 1.0  # pixel centres
    y, x = torch.meshgrid(-coords, coords, indexing="ij")  # image rows go down
    directions = -back + half * (x[..., None] * right + y[..., None] * true_up)
    return CAMERA_DISTANCE * back, F.normalize(directions, dim=-1)


@torch.no_grad()
def material_swatch(
    shader: NeuralShader,
    feature: torch.Tensor,
    size: int = 64,
    background: tuple[float, float, float] | None = NEUTRAL,
    view: tuple[float, float, float] = DEFAULT_VIEW,
    up: tuple[float, float, float] = DEFAULT_UP,
    supersample: int = 2,
) -> np.ndarray:
    """A material ball of one feature vector.

    Args:
        shader: the trained shader; only its c is evaluated.
        feature: (F,) the material's feature (e.g. `Materials.representatives[i]`).
        size: image side in pixels.
        background: sRGB colour behind the ball; None returns RGBA with a transparent background.
        view, up: direction from the ball towards the camera, and the image's up direction.
        supersample: rays per pixel side (antialiased silhouette).

    Returns:
        (size, size, 3) float32 sRGB in [0, 1], or (size, size, 4) straight-alpha RGBA when
        `background` is None.
    """
    if size < 1 or supersample < 1:
        raise ValueError(f"size and supersample must be ≥ 1, got {size}, {supersample}")
    param = next(shader.parameters())
    device, dtype = param.device, param.dtype
    h = feature.detach().reshape(-1).to(device, dtype)
    if h.shape[0] != shader.config.features:
        raise ValueError(f"feature must have {shader.config.features} entries, got {h.shape[0]}")
    fine = size * supersample
    origin, rays = _camera_rays(
        fine, torch.tensor(view, dtype=torch.float64), torch.tensor(up, dtype=torch.float64)
    )
    # |o + t·d|² = 1 with |d| = 1: t² + 2(o·d)t + |o|² − 1 = 0, nearest root.
    b = rays @ origin
    disc = b * b - (origin @ origin - 1.0)
    hit = disc >= 0
    t = -b - disc.clamp_min(0).sqrt()
    normal = F.normalize(origin + t[..., None] * rays, dim=-1)
    rgb = torch.zeros(fine, fine, 3, dtype=torch.float32)
    if bool(hit.any()):
        n = normal[hit].to(device, dtype)
        omega = (-rays[hit]).to(device, dtype)
        rgb[hit] = shader.color(h.expand(n.shape[0], -1), n, omega).float().cpu()
    coverage = hit.float()
    # Box-filter premultiplied colour and coverage back to `size`, then un-premultiply.
    stacked = torch.cat((rgb * coverage[..., None], coverage[..., None]), dim=-1).permute(2, 0, 1)[None]
    pooled = F.avg_pool2d(stacked, supersample)[0].permute(1, 2, 0)
    alpha = pooled[..., 3:]
    if background is None:
        straight = pooled[..., :3] / alpha.clamp_min(1e-6)
        return torch.cat((straight.clamp(0, 1), alpha), dim=-1).numpy()
    back = torch.tensor(background, dtype=torch.float32)
    return (pooled[..., :3] + (1.0 - alpha) * back).clamp(0, 1).numpy()


def material_swatches(shader: NeuralShader, features: torch.Tensor, size: int = 64, **kwargs) -> np.ndarray:
    """Balls of every row of features (K, F) → (K, size, size, 3 or 4); options as `material_swatch`."""
    return np.stack([material_swatch(shader, f, size, **kwargs) for f in features])
