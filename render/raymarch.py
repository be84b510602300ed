"""Ray marching of an implicit field to its first level crossing, with depth gradients by implicit
differentiation (DVR, Niemeyer et al. 2020, §3.3).

A field is any torch callable `field(points (M, 3)) -> values (M,)` (or (M, 1)); "occupied" means
`value >= level`. For an occupancy network that outputs logits, level = `logit_level(τ)` (0 for
τ = 0.5), which is the same surface as probability τ and better conditioned.

    rays = camera_rays(camera, pixels)                 # unit directions from the camera centre
    t_near, t_far, in_box = ray_box(rays, lo, hi)       # slab test
    hits = march(field, rays, t_near, t_far, n=16)      # no autograd: evenly spaced + secant
    d = surface_depth(field, rays, hits.depth, params)  # same values, gradients by eq. (11)
    p = rays.at(d)                                      # differentiable surface points

Forward (`march`, under `torch.no_grad`): n evenly spaced depths t_i = t_near + i·(t_far − t_near)/(n−1)
are evaluated; the first i with f(t_i) < level ≤ f(t_{i+1}) brackets the surface, and
`secant_steps` regula-falsi steps refine it (the bracket keeps one end on each side, so it never
leaves the interval). A ray whose first sample is already occupied (it starts inside the object)
or that never crosses reports no hit. Nothing is kept for autograd.

Backward (`surface_depth`): with p̂ = o + d̂·w on the level set, f(p̂) = level gives
∂d̂/∂θ = −(∂f/∂p̂ · w)⁻¹ ∂f/∂θ (eq. 8). The incoming gradient is scaled elementwise by
−1/(∂f/∂p̂ · w), then backpropagated once through f at p̂ (eq. 11): one forward and one backward of
the field at the surface points, no unrolled marching. The ray origins and directions receive
their gradients the same way (∂d̂/∂o = −∇f/(∇f·w), ∂d̂/∂w = −d̂∇f/(∇f·w)).

Depth is the distance along the unit direction (not the camera z): `rays.z_per_depth` converts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from render.camera import Camera

Field = Callable[[torch.Tensor], torch.Tensor]

#: Points per field call while marching (bounds memory: chunk × the field's widest layer).
MARCH_CHUNK = 65536


@dataclass(frozen=True)
class Rays:
    """A batch of rays.

    Attributes:
        origins: (N, 3) ray origins.
        directions: (N, 3) unit directions.
        z_per_depth: (N,) camera z per unit of depth along the ray (w · camera z axis); multiply a
            depth by it to compare with a z-buffer depth map. Ones when unknown.
    """

    origins: torch.Tensor
    directions: torch.Tensor
    z_per_depth: torch.Tensor

    def __post_init__(self) -> None:
        o, w = self.origins, self.directions
        if o.ndim != 2 or o.shape[1] != 3 or w.shape != o.shape:
            raise ValueError(f"rays: origins and directions must both be (N, 3), got {tuple(o.shape)} and {tuple(w.shape)}")
        if self.z_per_depth.shape != o.shape[:1]:
            raise ValueError(f"rays: z_per_depth must be (N,), got {tuple(self.z_per_depth.shape)}")

    def __len__(self) -> int:
        return self.origins.shape[0]

    def at(self, depth: torch.Tensor) -> torch.Tensor:
        """Points o + depth·w (N, 3) for depths (N,)."""
        return self.origins + depth[:, None] * self.directions

    def select(self, index: torch.Tensor) -> Rays:
        """The rays picked by a boolean mask or an index tensor."""
        return Rays(self.origins[index], self.directions[index], self.z_per_depth[index])

    @staticmethod
    def make(origins: torch.Tensor, directions: torch.Tensor) -> Rays:
        """Rays from origins (N, 3) or (3,) and directions (N, 3), normalised here."""
        directions = directions / directions.norm(dim=-1, keepdim=True)
        origins = origins.expand_as(directions)
        return Rays(origins, directions, torch.ones_like(directions[:, 0]))


@dataclass(frozen=True)
class Hits:
    """What `march` found, per ray (all (N,), no autograd).

    Attributes:
        depth: surface depth along the ray where `hit`, +inf elsewhere.
        hit: a free→occupied crossing was found inside the box.
        in_box: the ray meets the box (t_far > t_near); rays outside it never hit.
        t_near, t_far: the ray's interval in the box (0 where not `in_box`).
    """

    depth: torch.Tensor
    hit: torch.Tensor
    in_box: torch.Tensor
    t_near: torch.Tensor
    t_far: torch.Tensor


def logit_level(tau: float) -> float:
    """The logit level log(τ/(1−τ)) of occupancy probability τ ∈ (0, 1) (0 for τ = 0.5)."""
    if not isinstance(tau, (int, float)) or isinstance(tau, bool) or not 0.0 < tau < 1.0:
        raise ValueError(f"occupancy level τ must be a number strictly between 0 and 1, got {tau!r}")
    return math.log(tau / (1.0 - tau))


def camera_rays(
    camera: Camera,
    pixels: torch.Tensor,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Rays:
    """Rays from the camera centre through pixel positions.

    Args:
        camera: the view (OpenCV pinhole, world→camera).
        pixels: (N, 2) pixel coordinates (u, v) in the corner convention: pixel (i, j) has its
            centre at (j + 0.5, i + 0.5).
        dtype, device: of the returned tensors (device defaults to `pixels`'s).

    Returns:
        `Rays` with the camera centre as origin and unit world directions.
    """
    if pixels.ndim != 2 or pixels.shape[1] != 2:
        raise ValueError(f"camera_rays: pixels must be (N, 2), got {tuple(pixels.shape)}")
    device = pixels.device if device is None else device
    Kinv = torch.tensor(np.linalg.inv(camera.K), dtype=torch.float64, device=device)
    R = torch.tensor(np.array(camera.R), dtype=torch.float64, device=device)
    uv = pixels.to(device=device, dtype=torch.float64)
    uv1 = torch.cat([uv, torch.ones_like(uv[:, :1])], dim=1)
    cam_dirs = uv1 @ Kinv.T  # camera frame, z = 1
    cam_dirs = cam_dirs / cam_dirs.norm(dim=1, keepdim=True)
    world_dirs = cam_dirs @ R  # Rᵀ·d for row vectors
    centre = torch.tensor(camera.center, dtype=torch.float64, device=device)
    return Rays(
        centre.expand_as(world_dirs).to(dtype).contiguous(),
        world_dirs.to(dtype).contiguous(),
        cam_dirs[:, 2].to(dtype).contiguous(),
    )


def ray_box(
    rays: Rays,
    box_min: Sequence[float] | torch.Tensor,
    box_max: Sequence[float] | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab intersection of rays with an axis-aligned box.

    Returns:
        t_near (N,), t_far (N,): the part of the ray (depth ≥ 0) inside the box, both 0 where it
        misses; in_box (N,) bool: whether it meets the box with t_far > t_near.
    """
    o, w = rays.origins, rays.directions
    lo = torch.as_tensor(box_min, dtype=o.dtype, device=o.device)
    hi = torch.as_tensor(box_max, dtype=o.dtype, device=o.device)
    if lo.shape != (3,) or hi.shape != (3,) or not bool((hi > lo).all()):
        raise ValueError(f"ray_box: box_min and box_max must be 3 numbers with min < max, got {lo.tolist()} and {hi.tolist()}")
    with torch.no_grad():
        inv = 1.0 / torch.where(w.abs() < 1e-12, torch.full_like(w, 1e-12), w)
        t0, t1 = (lo - o) * inv, (hi - o) * inv
        t_near = torch.minimum(t0, t1).amax(dim=1).clamp_min(0.0)
        t_far = torch.maximum(t0, t1).amin(dim=1)
        in_box = t_far > t_near
        zero = torch.zeros_like(t_near)
        return torch.where(in_box, t_near, zero), torch.where(in_box, t_far, zero), in_box


def _values(field: Field, points: torch.Tensor) -> torch.Tensor:
    v = field(points)
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.shape != points.shape[:1]:
        raise ValueError(f"field must map (M, 3) points to (M,) or (M, 1) values, got {tuple(v.shape)} for {tuple(points.shape)}")
    return v


def _check_march_args(n: int, level: float, secant_steps: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"march: n (samples per ray) must be an integer >= 2, got {n!r}")
    if isinstance(secant_steps, bool) or not isinstance(secant_steps, int) or secant_steps < 0:
        raise ValueError(f"march: secant_steps must be an integer >= 0, got {secant_steps!r}")
    if not isinstance(level, (int, float)) or isinstance(level, bool) or not math.isfinite(level):
        raise ValueError(f"march: level must be a finite number, got {level!r}")


@torch.no_grad()
def march(
    field: Field,
    rays: Rays,
    t_near: torch.Tensor,
    t_far: torch.Tensor,
    n: int,
    level: float = 0.0,
    secant_steps: int = 8,
    chunk: int = MARCH_CHUNK,
) -> Hits:
    """The first free→occupied crossing of `level` on each ray (forward pass of DVR, §3.3).

    Args:
        field: points (M, 3) → values (M,); occupied where value ≥ level.
        rays: N rays.
        t_near, t_far: (N,) the interval to march (e.g. from `ray_box`); rays with t_far ≤ t_near
            are skipped.
        n: samples per ray, evenly spaced over [t_near, t_far] including both ends (≥ 2).
        level: the field value at the surface.
        secant_steps: refinement steps inside the bracketing interval (paper: 8).
        chunk: points per field call.

    Returns:
        `Hits`; nothing in it carries autograd history.
    """
    _check_march_args(n, level, secant_steps)
    N = len(rays)
    if t_near.shape != (N,) or t_far.shape != (N,):
        raise ValueError(f"march: t_near and t_far must be ({N},), got {tuple(t_near.shape)} and {tuple(t_far.shape)}")
    o, w = rays.origins.detach(), rays.directions.detach()
    t_near, t_far = t_near.detach(), t_far.detach()
    in_box = t_far > t_near
    depth = torch.full((N,), math.inf, dtype=o.dtype, device=o.device)
    hit = torch.zeros(N, dtype=torch.bool, device=o.device)
    idx = in_box.nonzero()[:, 0]
    if len(idx) == 0:
        return Hits(depth, hit, in_box, t_near, t_far)

    ob, wb, tn, tf = o[idx], w[idx], t_near[idx], t_far[idx]
    steps = torch.linspace(0.0, 1.0, n, dtype=o.dtype, device=o.device)
    ts = tn[:, None] + (tf - tn)[:, None] * steps  # (B, n)
    pts = (ob[:, None, :] + ts[..., None] * wb[:, None, :]).reshape(-1, 3)
    vals = torch.cat([_values(field, pts[i : i + chunk]) for i in range(0, len(pts), chunk)]).reshape(len(idx), n)
    occupied = vals >= level
    crossing = ~occupied[:, :-1] & occupied[:, 1:]  # (B, n-1)
    found = crossing.any(dim=1) & ~occupied[:, 0]
    first = torch.argmax(crossing.to(torch.uint8), dim=1)  # first True (argmax returns the first maximum)

    rows = found.nonzero()[:, 0]
    if len(rows):
        i = first[rows]
        ta, tb = ts[rows, i], ts[rows, i + 1]
        fa, fb = vals[rows, i] - level, vals[rows, i + 1] - level  # fa < 0 ≤ fb
        o2, w2 = ob[rows], wb[rows]
        for _ in range(secant_steps):
            t = ta - fa * (tb - ta) / (fb - fa)
            ft = _values(field, o2 + t[:, None] * w2) - level
            below = ft < 0
            ta, fa = torch.where(below, t, ta), torch.where(below, ft, fa)
            tb, fb = torch.where(below, tb, t), torch.where(below, fb, ft)
        t = ta - fa * (tb - ta) / (fb - fa)
        t = torch.where(torch.isfinite(t), t, tb)
        sub = idx[rows]
        depth[sub] = t
        hit[sub] = True
    return Hits(depth, hit, in_box, t_near, t_far)


def random_depths(hits: Hits, generator: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly random depth in each ray's box interval [t_near, t_far] (N,), no autograd.

    For rays that miss the box both ends are 0, so the point is the ray origin; callers that need
    a point in the volume select `hits.in_box` first.
    """
    where = "cpu" if generator is None else generator.device
    u = torch.rand(hits.t_near.shape, generator=generator, dtype=hits.t_near.dtype, device=where)
    u = u.to(hits.t_near.device)
    return hits.t_near + u * (hits.t_far - hits.t_near)


class _SurfaceDepth(torch.autograd.Function):
    """Identity on the depths in the forward pass; eq. (11) in the backward pass (see module doc)."""

    @staticmethod
    def forward(ctx, depth, origins, directions, field, n_params, *params):  # type: ignore[override]
        ctx.field = field
        ctx.n_params = n_params
        ctx.save_for_backward(depth, origins, directions, *params)
        return depth.clone()

    @staticmethod
    def backward(ctx, grad_depth):  # type: ignore[override]
        depth, origins, directions, *params = ctx.saved_tensors
        with torch.enable_grad():
            p = (origins.detach() + depth[:, None] * directions.detach()).requires_grad_(True)
            f = _values(ctx.field, p)
            (df_dp,) = torch.autograd.grad(f.sum(), p, retain_graph=True)
            slope = (df_dp * directions).sum(dim=1)  # ∂f/∂p̂ · w
            safe = torch.where(slope.abs() < 1e-12, torch.full_like(slope, 1e-12), slope)
            scale = -grad_depth / safe  # elementwise factor of eq. (11)
            wanted = [q for q in params if q.requires_grad]
            grads = torch.autograd.grad(f, wanted, grad_outputs=scale, allow_unused=True) if wanted else ()
        it = iter(grads)
        param_grads = [next(it) if q.requires_grad else None for q in params]
        grad_o = scale[:, None] * df_dp if ctx.needs_input_grad[1] else None
        grad_w = (scale * depth)[:, None] * df_dp if ctx.needs_input_grad[2] else None
        return (None, grad_o, grad_w, None, None, *param_grads)


def surface_depth(
    field: Field,
    rays: Rays,
    depth: torch.Tensor,
    params: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Depths (N,) equal to `depth`, differentiable w.r.t. `params` and the rays by implicit differentiation.

    Args:
        field: the field `march` used (same level: only its derivatives at the surface matter).
        rays: the N rays; gradients reach their origins and directions if they require grad.
        depth: (N,) surface depths from `march` (finite: select `hits.hit` first).
        params: the tensors θ of the field to differentiate; default: `field.parameters()` when the
            field is an `nn.Module`, else none.

    The backward pass evaluates `field` once at the surface points, differentiates it w.r.t. the
    points (∂f/∂p̂) and backpropagates the scaled incoming gradient through it once (eq. 11).
    It is first-order only (no double backward). On a ray grazing the surface ∂f/∂p̂ · w → 0 and
    the gradient grows without bound, as the true derivative does; callers that fear outliers clip.
    """
    if depth.shape != (len(rays),):
        raise ValueError(f"surface_depth: depth must be ({len(rays)},), got {tuple(depth.shape)}")
    if not bool(torch.isfinite(depth).all()):
        raise ValueError("surface_depth: depths must be finite (pass the rays that hit, hits.hit)")
    if params is None:
        params = list(field.parameters()) if isinstance(field, torch.nn.Module) else []
    params = list(params)
    return _SurfaceDepth.apply(depth.detach(), rays.origins, rays.directions, field, len(params), *params)
