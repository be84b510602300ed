"""DVR's training losses (Niemeyer et al. 2020, §3.4) for one batch of rays, and its mesh output.

Each sampled pixel falls in one case (the paper's sets):

    inside the mask, surface found        → photometric L1 of t(p̂) (eq. 12); depth L1 (eq. 13)
                                            when a depth map is given; normal smoothness at p̂
    outside the mask                      → freespace BCE(f, 0) at p̂, or at a random point of the
                                            ray in the box when no surface was found (eq. 14)
    inside the mask, no surface found     → occupancy BCE(f, 1) at a random point of the ray in the
                                            box, or at the true depth when a depth map gives it (eq. 15)

Rays that miss the box contribute nothing. Every term is a sum over its rays divided by the number
of rays in the batch, so a case's weight in the total follows how many rays fall in it.

The photometric and depth terms reach the occupancy through p̂'s depth by implicit differentiation
(`render.raymarch.surface_depth`); the BCE terms use f at fixed points (no gradient through the point).

Normal smoothness (the multi-view regulariser the issue asks for; it is not in the paper's main
text, of which `shared/papers` has a copy, so its form here is our reading of DVR's supplementary
material, unchecked against it): ‖n(p̂) − n(p̂ + ε)‖₂ with n = −∇f/‖∇f‖ the outward normal and ε
uniform in a cube of half-side `normal_radius`. It needs ∇f with `create_graph`, a second
backward through the net (the costliest term per ray). `normal = 0.05` is our choice of a small
weight, not a number from the paper.

Points are in the normalised cube ([-1, 1]³), where the field lives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from recon.mesh.level_set import extract_level_set
from recon.methods.dvr_field import DVRField
from render.raymarch import Hits, Rays, random_depths, surface_depth


@dataclass(frozen=True)
class DVRLossWeights:
    """Weights of the DVR terms (1 for the paper's photometric, freespace and occupancy terms).

    Attributes:
        rgb, freespace, occupancy, depth, normal: the terms' weights (depth is used only when a
            depth map is passed).
        normal_radius: half-side of the cube the normal term's neighbour is drawn from
            (normalised units).
    """

    rgb: float = 1.0
    freespace: float = 1.0
    occupancy: float = 1.0
    depth: float = 1.0
    normal: float = 0.05
    normal_radius: float = 0.01

    def __post_init__(self) -> None:
        for name in ("rgb", "freespace", "occupancy", "depth", "normal", "normal_radius"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"DVR loss weights: {name} must be a finite number >= 0, got {value!r}")


def photometric_loss(predicted: torch.Tensor, target: torch.Tensor, count: int) -> torch.Tensor:
    """Σ ‖t(p̂) − I‖₁ over the rays, divided by `count` (eq. 12 with RGB features and L1)."""
    return (predicted - target).abs().sum() / count


def freespace_loss(logits: torch.Tensor, count: int) -> torch.Tensor:
    """Σ BCE(f, 0) over the points, divided by `count` (eq. 14); `logits` are occupancy logits."""
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="sum") / count


def occupancy_loss(logits: torch.Tensor, count: int) -> torch.Tensor:
    """Σ BCE(f, 1) over the points, divided by `count` (eq. 15); `logits` are occupancy logits."""
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="sum") / count


def depth_loss(predicted: torch.Tensor, target: torch.Tensor, count: int) -> torch.Tensor:
    """Σ |d̂ − d| over the rays, divided by `count` (eq. 13)."""
    return (predicted - target).abs().sum() / count


def outward_normals(field: DVRField, points: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """n(p) = −∇f/‖∇f‖ (M, 3): occupancy grows inwards, so its negated gradient points out."""
    with torch.enable_grad():
        p = points.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(field.occupancy_logit(p).sum(), p, create_graph=create_graph)
    return -grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-9)


def normal_loss(
    field: DVRField,
    points: torch.Tensor,
    radius: float,
    count: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Σ ‖n(p) − n(p + ε)‖₂ over surface points p (M, 3), ε uniform in [−radius, radius]³, / `count`."""
    eps = (torch.rand(points.shape, generator=generator, dtype=points.dtype) * 2 - 1).to(points.device) * radius
    n0 = outward_normals(field, points)
    n1 = outward_normals(field, points + eps)
    return (n0 - n1).norm(dim=-1).sum() / count


@dataclass(frozen=True)
class DVRLosses:
    """One batch's terms (scalar tensors; zero when no ray fell in the case) and ray counts.

    `total` is the weighted sum; the counts say how many rays each case had.
    """

    total: torch.Tensor
    rgb: torch.Tensor
    freespace: torch.Tensor
    occupancy: torch.Tensor
    depth: torch.Tensor
    normal: torch.Tensor
    n_surface: int
    n_freespace: int
    n_occupancy: int

    def items(self) -> dict[str, float]:
        """The terms as plain floats (for run records)."""
        return {k: float(getattr(self, k).detach()) for k in ("total", "rgb", "freespace", "occupancy", "depth", "normal")}


def dvr_losses(
    field: DVRField,
    rays: Rays,
    hits: Hits,
    mask: torch.Tensor,
    rgb: torch.Tensor,
    weights: DVRLossWeights | None = None,
    depth: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    level: float = 0.0,
) -> DVRLosses:
    """The DVR loss of one batch of N rays (module docstring).

    Args:
        field: the occupancy/texture net; `hits` must come from marching its `occupancy_logit`.
        rays: the N rays (normalised cube).
        hits: `render.raymarch.march` of those rays.
        mask: (N,) bool, the pixel is inside the object mask.
        rgb: (N, 3) the pixels' colours.
        weights: the terms' weights (default `DVRLossWeights()`).
        depth: optional (N,) true depth along the ray (not z: divide a z-buffer by
            `rays.z_per_depth`), NaN or inf where unknown.
        generator: for the random points (on the CPU).
        level: the logit level the surface was marched at (0 for τ = 0.5).
    """
    w = weights if weights is not None else DVRLossWeights()
    N = len(rays)
    if mask.shape != (N,) or mask.dtype != torch.bool:
        raise ValueError(f"dvr_losses: mask must be a ({N},) bool tensor, got {tuple(mask.shape)} {mask.dtype}")
    if rgb.shape != (N, 3):
        raise ValueError(f"dvr_losses: rgb must be ({N}, 3), got {tuple(rgb.shape)}")
    if depth is not None and depth.shape != (N,):
        raise ValueError(f"dvr_losses: depth must be ({N},), got {tuple(depth.shape)}")
    count = max(N, 1)
    zero = rgb.new_zeros(())
    params = [q for q in field.parameters() if q.requires_grad]
    rand = random_depths(hits, generator)

    surface = mask & hits.hit
    free = ~mask & hits.in_box
    grow = mask & ~hits.hit & hits.in_box

    rgb_term = depth_term = normal_term = zero
    if bool(surface.any()):
        sel = rays.select(surface)
        d = surface_depth(lambda p: field.occupancy_logit(p) - level, sel, hits.depth[surface], params)
        p = sel.at(d)
        rgb_term = photometric_loss(field.texture(p), rgb[surface], count)
        if depth is not None:
            known = torch.isfinite(depth[surface])
            if bool(known.any()):
                depth_term = depth_loss(d[known], depth[surface][known], count)
        if w.normal > 0:
            normal_term = normal_loss(field, p.detach(), w.normal_radius, count, generator)

    freespace_term = zero
    if bool(free.any()):
        t = torch.where(hits.hit[free], hits.depth[free], rand[free])
        freespace_term = freespace_loss(field.occupancy_logit(rays.select(free).at(t).detach()) - level, count)

    occupancy_term = zero
    if bool(grow.any()):
        t = rand[grow]
        if depth is not None:
            t = torch.where(torch.isfinite(depth[grow]), depth[grow], t)
        occupancy_term = occupancy_loss(field.occupancy_logit(rays.select(grow).at(t).detach()) - level, count)

    total = w.rgb * rgb_term + w.freespace * freespace_term + w.occupancy * occupancy_term + w.normal * normal_term
    if depth is not None:
        total = total + w.depth * depth_term
    return DVRLosses(
        total, rgb_term, freespace_term, occupancy_term, depth_term, normal_term,
        int(surface.sum()), int(free.sum()), int(grow.sum()),
    )


def extract_mesh(
    field: DVRField,
    box_min: Sequence[float] = (-1.0, -1.0, -1.0),
    box_max: Sequence[float] = (1.0, 1.0, 1.0),
    resolution: int = 32,
    refinements: int = 2,
    level: float = 0.0,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The DVR output: marching cubes of f = τ (logit `level`) with MISE-like refinement, and colours t.

    Returns:
        vertices (V, 3) float64 (normalised cube), faces (F, 3) int64 counter-clockwise from
        outside, vertex colours (V, 3) float32 in [0, 1] (linear, t at each vertex).
    """
    was_training = field.training
    field.eval()
    try:
        v, f = extract_level_set(field.occupancy_logit, box_min, box_max, level, resolution, refinements, device)
        with torch.no_grad():
            colors = [
                field.texture(torch.as_tensor(v[i : i + 65536], dtype=torch.float32, device=device)).cpu()
                for i in range(0, len(v), 65536)
            ]
        c = torch.cat(colors).numpy() if colors else np.zeros((0, 3), dtype=np.float32)
    finally:
        field.train(was_training)
    return v, f, c
