"""Isosurfaces through rasterize-then-splat (Cole et al. 2021, §3.1.3): sample, then evaluate.

The surface is the level set {x : f(x) = level} of a function f given on a regular lattice, with
f < level inside (a signed distance, say; pass -density for a density). RtS splits rendering it in
two:

* **Sampling** (not differentiable): `extract_isosurface` runs Marching Cubes over the lattice
  values (scikit-image) once per step, the only cubic-cost stage; `sample_isosurface` rasterizes that
  mesh for each view with the ordinary rasterizer (`render.rasterize`, K layers, back faces culled).
  Each sample's parameter is the paper's 9-D vector: the 6 lattice indices of the 3 lattice edges
  its triangle's corners lie on, and its 3 barycentrics. Triangles with an edge whose two values
  are nearly equal (|f_a - f_b| < `min_gap`, where α = f_a / (f_a - f_b) is singular) are dropped
  before rasterizing, as the paper drops samples of nearly identical cells.
* **Evaluation** (`evaluate_isosurface`, differentiable): f is evaluated again at those lattice
  points only (looked up in a grid tensor, or any torch function of the points: quadratic, not
  cubic, cost), each corner is the edge crossing p_a + α (p_b - p_a), the sample is their
  barycentric combination, normals are ∇f (autograd for a function, central differences for a
  grid) or the triangle's, view directions and splat centres as for meshes. The result is the mesh path's `GBuffer`, so
  `Renderer.shade_samples` and `Renderer.splat` are shared.

Gradients reach the lattice values (or f's parameters) through α only: the topology Marching Cubes
chose is a constant of the step, so it changes only at the next sampling.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from render.camera import Camera, to_clip
from render.fragments import Fragments
from render.rasterize import Rasterizer, rasterize
from render.renderer import GBuffer

__all__ = [
    "IsoMesh",
    "IsoSamples",
    "Lattice",
    "evaluate_isosurface",
    "extract_isosurface",
    "sample_isosurface",
    "trilinear",
]

# f(points (N, 3)) -> (N,) or (N, 1) values; any torch function (an MLP, an analytic SDF, ...).
FieldFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Lattice:
    """A regular lattice of points: index (i, j, k) sits at lo + (i, j, k) · (hi - lo) / (shape - 1).

    Grid values are (nx, ny, nz) arrays indexed [i, j, k] (x first); a flat lattice index is
    i·ny·nz + j·nz + k, i.e. `values.reshape(-1)` order.
    """

    shape: tuple[int, int, int]
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        lo = tuple(float(v) for v in self.lo)
        hi = tuple(float(v) for v in self.hi)
        if len(shape) != 3 or min(shape) < 2:
            raise ValueError(f"a lattice needs at least 2 points per axis, got shape {shape}")
        if len(lo) != 3 or len(hi) != 3 or any(h <= low for low, h in zip(lo, hi)):
            raise ValueError(f"lattice bounds must satisfy lo < hi on every axis, got {lo}, {hi}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    @staticmethod
    def cube(n: int, half: float = 1.0) -> Lattice:
        """n³ points over [-half, half]³."""
        return Lattice((n, n, n), (-half,) * 3, (half,) * 3)

    @property
    def spacing(self) -> np.ndarray:
        """(3,) distance between neighbouring points along each axis."""
        return (np.asarray(self.hi) - np.asarray(self.lo)) / (np.asarray(self.shape) - 1)

    def points(
        self, index: torch.Tensor | None = None, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """World positions (..., 3) of flat lattice indices (...,), or of every point (nx, ny, nz, 3)."""
        nx, ny, nz = self.shape
        if index is None:  # one formula for both, so a point's position never depends on the call
            return self.points(torch.arange(nx * ny * nz, device=device), dtype).reshape(nx, ny, nz, 3)
        ijk = torch.stack([index // (ny * nz), (index // nz) % ny, index % nz], dim=-1)
        lo = torch.tensor(self.lo, dtype=dtype, device=index.device)
        return lo + ijk.to(dtype) * torch.tensor(self.spacing, dtype=dtype, device=index.device)

    @torch.no_grad()
    def sample(
        self, f: FieldFn, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu", chunk: int = 1 << 18
    ) -> torch.Tensor:
        """(nx, ny, nz) values of a function on every lattice point, without gradient, `chunk` points
        a call: what `extract_isosurface` needs when f is a function (the one cubic-cost evaluation)."""
        points = self.points(dtype=dtype, device=device).reshape(-1, 3)
        values = torch.cat([f(points[i : i + chunk]).reshape(-1) for i in range(0, len(points), chunk)])
        return values.reshape(self.shape)


@dataclass(frozen=True, eq=False)
class IsoMesh:
    """Marching Cubes' triangulation of a level set, each vertex tied to its lattice edge.

    Attributes:
        vertices: (V, 3) float64 world positions (shared between faces).
        faces: (T, 3) int64, counter-clockwise seen from outside (f > level).
        edges: (V, 2) int64 flat lattice indices of the edge vertex v lies on, inside end
            (f < level) first; vertex v = p_a + α (p_b - p_a), α = f_a / (f_a - f_b).
        lattice: the lattice the indices refer to.
        level: the iso-value.
    """

    vertices: np.ndarray
    faces: np.ndarray
    edges: np.ndarray
    lattice: Lattice
    level: float


@dataclass(frozen=True, eq=False)
class IsoSamples:
    """What isosurface sampling returns for one view: never differentiable, reused by evaluation.

    Attributes:
        fragments: K layers of samples; tri_id indexes `edges` (-1 empty), bary are the sample's
            barycentrics β w.r.t. the triangle's corners.
        edges: (T, 3, 2) int64 flat lattice indices: corner c of triangle t lies on the lattice edge
            from edges[t, c, 0] (value < level at sampling) to edges[t, c, 1] (value >= level).
        lattice: the lattice the indices refer to.
        level: the iso-value.
        clip_matrix: (4, 4) float64 world → clip matrix the samples were rasterized with (for the
            splat centres).
    """

    fragments: Fragments
    edges: torch.Tensor
    lattice: Lattice
    level: float
    clip_matrix: torch.Tensor

    @property
    def parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The paper's 9-D U_k: (K, H, W, 6) int64 lattice indices (-1 empty) and (K, H, W, 3) β."""
        tri = self.fragments.tri_id
        index = torch.full((*tri.shape, 6), -1, dtype=torch.int64, device=tri.device)
        covered = tri >= 0
        index[covered] = self.edges.to(tri.device)[tri[covered]].reshape(-1, 6)
        return index, self.fragments.bary


def extract_isosurface(
    values: torch.Tensor | np.ndarray, lattice: Lattice, level: float = 0.0, min_gap: float = 1e-6
) -> IsoMesh:
    """Marching Cubes with the lattice edge of every vertex (not differentiable; once per step).

    Args:
        values: (nx, ny, nz) lattice values of f (any tensor or array; detached); inside where
            f < level. For a function, `lattice.sample(f)`.
        lattice: where the values sit.
        level: the iso-value.
        min_gap: triangles with a corner on an edge whose two values differ by less than this
            are dropped (α = f_a / (f_a - f_b) is singular there; RtS §3.1.3). Pass 0 for a mesh
            to export: a closed level set inside the lattice then gives a watertight mesh.

    Returns:
        IsoMesh: vertices shared between faces (those of dropped faces stay, unreferenced).
    """
    from skimage.measure import marching_cubes  # lazily: `import render` stays light

    v = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64) - level
    if v.shape != lattice.shape:
        raise ValueError(f"values must have the lattice's shape {lattice.shape}, got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("isosurface values must be finite")
    # Marching Cubes runs in float32: decide every sign in float32 here, so the edges read below
    # agree with the ones it saw. A value at the level counts as just outside (its f >= level).
    v = v.astype(np.float32)
    v[v == 0] = np.finfo(np.float32).tiny
    empty = IsoMesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 2), np.int64), lattice, float(level))
    if not ((v < 0).any() and (v > 0).any()):
        return empty
    # scikit-image's classic (Lorensen) Marching Cubes in lattice index coordinates ("descent":
    # inside below the level, faces counter-clockwise from outside); ~5x faster than gpytoolbox's
    # at 128^3. Not Lewiner's: it puts extra vertices inside some ambiguous cubes, on no edge.
    verts, faces, _, _ = marching_cubes(v, 0.0, gradient_direction="descent", method="lorensen")
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(faces) == 0:
        return empty
    a, b = _vertex_edges(np.asarray(verts, dtype=np.float64).reshape(-1, 3), v)
    flat_a = np.ravel_multi_index(a.T, lattice.shape)
    flat_b = np.ravel_multi_index(b.T, lattice.shape)
    fa, fb = v.reshape(-1)[flat_a].astype(np.float64), v.reshape(-1)[flat_b].astype(np.float64)
    valid = (fa * fb < 0) & (np.abs(fa - fb) >= min_gap)
    inside_first = np.where((fa < 0)[:, None], np.stack([flat_a, flat_b], 1), np.stack([flat_b, flat_a], 1))
    faces = faces[valid[faces].all(1)]
    # Positions from the values in float64 (the crossing `evaluate_isosurface` computes), not
    # from Marching Cubes' float32 vertices.
    t = np.where(valid, fa / np.where(valid, fa - fb, 1.0), 0.0)
    index = a + t[:, None] * (b - a)
    world = np.asarray(lattice.lo) + index * lattice.spacing
    return IsoMesh(world, faces, inside_first, lattice, float(level))


def _vertex_edges(verts: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lattice edge (a, b) (each (V, 3) integer indices) every Marching Cubes vertex lies on.

    In index space two of a vertex's coordinates are integers and the third lies between an
    integer and the next. A crossing within float32 rounding of a lattice point lands on the point
    itself; its edge is then one of the point's six with a sign change (which one moves the
    vertex by less than the rounding).
    """
    shape = np.array(v.shape)
    frac = np.abs(verts - np.round(verts))
    axis = frac.argmax(1)
    rows = np.arange(len(verts))
    a = np.round(verts).astype(np.int64)
    a[rows, axis] = np.floor(verts[rows, axis]).astype(np.int64)
    b = a.copy()
    b[rows, axis] += 1
    b = np.minimum(b, shape - 1)
    on_point = np.flatnonzero(frac.max(1) == 0)
    if len(on_point):
        point = a[on_point]
        sign = v[tuple(point.T)] < 0
        found = np.zeros(len(on_point), dtype=bool)
        for ax in range(3):
            for step in (1, -1):
                other = point.copy()
                other[:, ax] += step
                inside = (other[:, ax] >= 0) & (other[:, ax] < shape[ax])
                other[:, ax] = np.clip(other[:, ax], 0, shape[ax] - 1)
                take = ~found & inside & ((v[tuple(other.T)] < 0) != sign)
                b[on_point[take]] = other[take]
                found |= take
    return a, b


def _near_far(points: np.ndarray, camera: Camera) -> tuple[float, float]:
    if len(points) == 0:
        return 0.1, 1.0
    return camera.near_far(points)


@torch.no_grad()
def sample_isosurface(
    rasterizer: Rasterizer,
    surface: IsoMesh,
    camera: Camera,
    layers: int = 2,
    device: torch.device | str = "cpu",
) -> IsoSamples:
    """RtS sampling of an isosurface for one view: K layers of its Marching Cubes mesh. No gradient.

    Args:
        rasterizer: from `make_rasterizer` (or a `Renderer`'s `.rasterizer`).
        surface: from `extract_isosurface` (one extraction serves every view of a step).
        camera: the view.
        layers: K depth layers.
        device: where the fragments go (the evaluation's device).

    Returns:
        IsoSamples (fragments, per-triangle lattice edges, the clip matrix used).
    """
    verts, faces, vert_edges = surface.vertices, surface.faces, surface.edges
    clip_m = torch.tensor(camera.clip_matrix(*_near_far(verts, camera)), dtype=torch.float64)
    pos_clip = to_clip(torch.from_numpy(verts), clip_m).float()
    tri = torch.from_numpy(faces)
    if len(tri):
        frags = rasterize(rasterizer, pos_clip, tri, (camera.height, camera.width), layers).to(device)
    else:  # nothing to draw: all layers empty
        shape = (layers, camera.height, camera.width)
        frags = Fragments(
            torch.full(shape, -1, dtype=torch.int64, device=device),
            torch.zeros((*shape, 3), device=device),
            torch.full(shape, float("inf"), device=device),
        )
    edges = torch.from_numpy(vert_edges[faces]).to(device)  # (T, 3, 2)
    return IsoSamples(frags, edges, surface.lattice, surface.level, clip_m.to(device))


def trilinear(values: torch.Tensor, lattice: Lattice, points: torch.Tensor) -> torch.Tensor:
    """Trilinear interpolation of lattice values at world points; differentiable w.r.t. both.

    Args:
        values: (nx, ny, nz) lattice values.
        lattice: where they sit.
        points: (N, 3) world points (clamped to the lattice's box).

    Returns:
        (N,) interpolated values.
    """
    shape = torch.tensor(lattice.shape, device=points.device)
    lo = torch.tensor(lattice.lo, dtype=points.dtype, device=points.device)
    spacing = torch.tensor(lattice.spacing, dtype=points.dtype, device=points.device)
    u = (points - lo) / spacing
    u = torch.minimum(u.clamp(min=0), (shape - 1).to(u.dtype))
    cell = torch.minimum(u.detach().floor().long(), shape - 2)
    t = u - cell
    flat = values.reshape(-1)
    ny, nz = lattice.shape[1], lattice.shape[2]
    out = 0
    for di in (0, 1):
        for dj in (0, 1):
            for dk in (0, 1):
                idx = (cell[:, 0] + di) * ny * nz + (cell[:, 1] + dj) * nz + (cell[:, 2] + dk)
                wx, wy, wz = (t[:, a] if d else 1 - t[:, a] for a, d in enumerate((di, dj, dk)))
                w = wx * wy * wz
                out = out + w * flat[idx]
    return out


def _central_differences(values: torch.Tensor, lattice: Lattice, index: torch.Tensor) -> torch.Tensor:
    """(P, 3) gradient of lattice values at flat indices (P,): central differences, one-sided at
    the lattice's faces; differentiable w.r.t. `values`, reading 6 neighbours per point."""
    index = index.to(values.device)
    flat = values.reshape(-1)
    nx, ny, nz = lattice.shape
    ijk = (index // (ny * nz), (index // nz) % ny, index % nz)
    grads = []
    for coord, n, stride, h in zip(ijk, lattice.shape, (ny * nz, nz, 1), lattice.spacing):
        lo = (coord - 1).clamp(min=0)
        hi = (coord + 1).clamp(max=n - 1)
        diff = flat[index + (hi - coord) * stride] - flat[index + (lo - coord) * stride]
        grads.append(diff / ((hi - lo).to(flat.dtype) * float(h)))
    return torch.stack(grads, dim=-1)


def evaluate_isosurface(
    samples: IsoSamples,
    field: torch.Tensor | FieldFn,
    camera: Camera,
    normals: str = "gradient",
    dtype: torch.dtype | None = None,
) -> GBuffer:
    """RtS evaluation of an isosurface at fixed samples: the G-buffer, differentiable w.r.t. f.

    f is evaluated only at the lattice points the covered samples' edges use (at most 6 per
    sample; for a function's ∇f once more at each sample), so the cost grows with the image, not
    with the lattice.

    Args:
        samples: from `sample_isosurface` (for these camera and lattice).
        field: either the (nx, ny, nz) tensor of lattice values (looked up), or a torch function
            f(points (N, 3)) -> (N,) evaluated at the lattice points' world positions.
        camera: the same view the samples were taken from.
        normals: "gradient": ∇f/|∇f|, differentiable. For a function, by autograd at the sample
            (second derivatives of f in the backward pass); for a grid, central differences at
            the 6 lattice points (one-sided at the lattice's faces), interpolated along each edge
            by α and across the triangle by β, so neighbouring triangles share their corners'
            normals (smooth shading, like a mesh's vertex normals). "face": the triangle's
            normal through the evaluated corners.
        dtype: floating dtype of the G-buffer; the grid's dtype (float32 for a function) when None.

    Returns:
        GBuffer (position, unit normal pointing to f > level, view_dir, pixel_xy), zeros where empty.
    """
    if normals not in ("gradient", "face"):
        raise ValueError(f"normals must be 'gradient' or 'face', got {normals!r}")
    grid = isinstance(field, torch.Tensor)
    if grid and tuple(field.shape) != samples.lattice.shape:
        raise ValueError(f"grid values must have the lattice's shape {samples.lattice.shape}, got {tuple(field.shape)}")
    frags = samples.fragments
    device = frags.tri_id.device
    if dtype is None:
        dtype = field.dtype if grid else torch.float32
    covered = frags.covered
    tri = frags.tri_id[covered]  # (N,)
    ends = samples.edges.to(device)[tri]  # (N, 3, 2) lattice indices
    unique, inverse = torch.unique(ends.reshape(-1), return_inverse=True)
    lattice = samples.lattice
    points = lattice.points(unique, dtype=dtype)  # (P, 3) world positions
    if grid:
        f_values = field.reshape(-1)[unique.to(field.device)].to(device=device, dtype=dtype)
    else:
        f_values = field(points).reshape(-1).to(dtype)
    f_ends = (f_values - samples.level)[inverse].reshape(-1, 3, 2)
    p_ends = points[inverse].reshape(-1, 3, 2, 3)
    alpha = f_ends[..., 0] / (f_ends[..., 0] - f_ends[..., 1])  # (N, 3): sampling kept |gap| >= min_gap
    corners = p_ends[..., 0, :] + alpha[..., None] * (p_ends[..., 1, :] - p_ends[..., 0, :])  # (N, 3, 3)
    bary = frags.bary[covered].to(dtype)
    position_c = (bary[..., None] * corners).sum(1)  # (N, 3)

    if normals == "face":
        normal_c = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    elif grid:
        g_ends = _central_differences(field, lattice, unique).to(device=device, dtype=dtype)[inverse]
        g_ends = g_ends.reshape(-1, 3, 2, 3)
        g_corners = g_ends[..., 0, :] + alpha[..., None] * (g_ends[..., 1, :] - g_ends[..., 0, :])
        normal_c = (bary[..., None] * g_corners).sum(1)
    else:
        differentiable = position_c.requires_grad  # else f has nothing to differentiate
        with torch.enable_grad():
            x = position_c if differentiable else position_c.detach().requires_grad_(True)
            value = field(x).reshape(-1)
            (normal_c,) = torch.autograd.grad(value.sum(), x, create_graph=differentiable)
    normal_c = F.normalize(normal_c, dim=-1, eps=1e-12)

    index = torch.nonzero(covered.reshape(-1)).squeeze(1)  # the rows' order: boolean indexing is row-major
    return GBuffer.from_samples(frags, index, position_c, normal_c, camera, samples.clip_matrix.to(dtype))
