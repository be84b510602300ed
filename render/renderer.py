"""The facade the methods use: mesh + camera + shading function → image, coverage and G-buffers.

Rasterization (sampling) is never differentiated; everything after it is: the G-buffer is
interpolated from the vertices, shading is any torch function of it, and silhouettes get their
gradients from RtS splatting (any backend) or, with nvdiffrast, optionally from its `antialias`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from render.camera import Camera, clip_to_pixels, to_clip
from render.fragments import Fragments
from render.interpolate import interpolate_covered
from render.rasterize import Rasterizer, make_rasterizer, rasterize
from render.splat import splat_samples

if TYPE_CHECKING:
    from render.isosurface import IsoMesh

log = logging.getLogger(__name__)

# shade(position (N,3), normal (N,3), view_dir (N,3)) -> (N,C): called on covered samples only.
ShadeFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CoveredSamples:
    """A G-buffer's covered samples as rows (N of them, in flat K·H·W order).

    Shading and splatting read these rather than gathering them back out of the dense buffers:
    on the CPU those gathers' backward is an index_put into zeroed K·H·W buffers (reading the rows
    took four views' NDS losses and backward at 128² from 49–57 to 41–45 ms on one thread).

    Attributes:
        index: (N,) int64 ascending flat indices into K·H·W.
        position, normal, view_dir: (N, 3) rows of the G-buffer's tensors (normal None with them).
        pixel_xy: (N, 2) the points' projections in pixels: the splat centres.
    """

    index: torch.Tensor
    position: torch.Tensor
    normal: torch.Tensor | None
    view_dir: torch.Tensor
    pixel_xy: torch.Tensor


@dataclass(frozen=True)
class GBuffer:
    """Differentiable per-sample surface attributes of K layers (zeros where empty).

    Built from the covered samples' rows (`from_samples`); the dense (K, H, W, ·) position,
    normal, view direction and splat centres are scattered from them on first use only: the NDS
    step and the benchmarks shade and splat the rows, and never need them (at 512² each is a
    zeroed 6 MB buffer and a scatter, forward and backward).

    Attributes:
        fragments: the (non-differentiable) samples.
        samples: the covered samples' rows (what shading reads).
        pixel_xy: (K, H, W, 2) projections of the surface points (the splat centres; pixel centres
            in value where empty).
        position: (K, H, W, 3) world-space surface points.
        normal: (K, H, W, 3) unit normals (a mesh's interpolated vertex normals, an isosurface's
            ∇f or face normals); None when a mesh was given no normals.
        view_dir: (K, H, W, 3) unit directions from the surface point towards the camera centre.
    """

    fragments: Fragments
    samples: CoveredSamples

    @property
    def covered(self) -> torch.Tensor:
        return self.fragments.covered

    @cached_property
    def position(self) -> torch.Tensor:
        return self._dense(self.samples.position)

    @cached_property
    def normal(self) -> torch.Tensor | None:
        return None if self.samples.normal is None else self._dense(self.samples.normal)

    @cached_property
    def view_dir(self) -> torch.Tensor:
        return self._dense(self.samples.view_dir)

    @cached_property
    def pixel_xy(self) -> torch.Tensor:
        K, H, W = self.covered.shape
        rows = self.samples.pixel_xy
        ys, xs = torch.meshgrid(
            torch.arange(H, dtype=rows.dtype, device=rows.device) + 0.5,
            torch.arange(W, dtype=rows.dtype, device=rows.device) + 0.5,
            indexing="ij",
        )
        return _scatter_rows(rows, self.samples.index, torch.stack([xs, ys], dim=-1).expand(K, H, W, 2))

    def _dense(self, rows: torch.Tensor) -> torch.Tensor:
        return _scatter_rows(rows, self.samples.index, rows.new_zeros(*self.covered.shape, rows.shape[1]))

    @staticmethod
    def from_samples(
        frags: Fragments,
        index: torch.Tensor,
        position: torch.Tensor,
        normal: torch.Tensor | None,
        camera: Camera,
        clip_m: torch.Tensor,
    ) -> GBuffer:
        """The G-buffer of covered samples' positions and unit normals (rows at flat `index`).

        View directions and splat centres are computed on the N rows (an empty sample has
        w = 0, and a NaN in an unselected `torch.where` branch would still poison the gradient).
        """
        _, H, W = frags.tri_id.shape
        centre = torch.as_tensor(camera.center, dtype=position.dtype, device=position.device)
        view_dir = F.normalize(centre - position, dim=-1, eps=1e-12)
        pixel_xy = clip_to_pixels(to_clip(position, clip_m), W, H)
        return GBuffer(frags, CoveredSamples(index, position, normal, view_dir, pixel_xy))


def _scatter_rows(rows: torch.Tensor, index: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """`base` (K, H, W, C) with `rows` (N, C) at the flat sample indices `index`; differentiable
    w.r.t. `rows` (the backward is an index_select)."""
    return base.reshape(-1, rows.shape[1]).index_copy(0, index, rows).reshape(base.shape)


@dataclass(frozen=True)
class RenderResult:
    """image: (H, W, C) premultiplied colour; alpha: (H, W) coverage in [0, 1]; gbuffer: the samples."""

    image: torch.Tensor
    alpha: torch.Tensor
    gbuffer: GBuffer


def _near_far(vertices: torch.Tensor, camera: Camera) -> tuple[float, float]:
    """Near/far planes enclosing the mesh in front of the camera (clamped so near > 0)."""
    with torch.no_grad():
        R = torch.tensor(camera.R, dtype=vertices.dtype, device=vertices.device)
        t = torch.tensor(camera.t, dtype=vertices.dtype, device=vertices.device)
        z = vertices.detach() @ R[2] + t[2]
        far = float(z.max()) * 1.05 + 1e-6 if z.numel() else 1.0
        near = max(float(z.min()) * 0.95, far * 1e-4)
    return near, max(far, near * 1.01)


class Renderer:
    """Differentiable mesh renderer on CPU or CUDA; the backend is chosen automatically or by name.

    Args:
        backend: "auto" (nvdiffrast when CUDA and it import, else gl), "gl" or "nvdiffrast", or a
            rasterizer context already made (`make_rasterizer`), which the renderer then shares.
        device: where the differentiable work happens (the G-buffer, shading, splatting).
        layers: K depth layers for splatting (2 resolves occlusion boundaries, RtS §3.3.2).
        edges: "splat" (RtS, any backend) or "antialias" (nvdiffrast only) for silhouette gradients.
    """

    def __init__(
        self,
        backend: str | Rasterizer = "auto",
        device: torch.device | str = "cpu",
        layers: int = 2,
        edges: str = "splat",
    ) -> None:
        self.device = torch.device(device)
        if isinstance(backend, str):
            self.rasterizer: Rasterizer = make_rasterizer(backend, self.device if self.device.type == "cuda" else None)
        else:
            self.rasterizer = backend
        self.backend = "nvdiffrast" if type(self.rasterizer).__name__.startswith("Nvdiffrast") else "gl"
        if edges not in ("splat", "antialias"):
            raise ValueError(f"edges must be 'splat' or 'antialias', got {edges!r}")
        if edges == "antialias" and self.backend != "nvdiffrast":
            raise ValueError("edges='antialias' needs the nvdiffrast backend; use edges='splat' (RtS) instead")
        self.layers = layers
        self.edges = edges

    def release(self) -> None:
        """Free the rasterizer's GL context and render targets (nvdiffrast's context has nothing to
        free); call on the thread that rendered. The renderer cannot render afterwards."""
        release = getattr(self.rasterizer, "release", None)
        if release is not None:
            release()

    def gbuffer(
        self,
        vertices: torch.Tensor,
        faces: torch.Tensor,
        camera: Camera,
        normals: torch.Tensor | None = None,
        layers: int | None = None,
    ) -> GBuffer:
        """Rasterize (no gradient) and interpolate the G-buffer (gradient to `vertices`/`normals`).

        Args:
            vertices: (V, 3) float32 world positions on `self.device`.
            faces: (F, 3) int64, counter-clockwise outward.
            camera: the view (OpenCV, render.camera).
            normals: (V, 3) vertex normals (the mesh's business, e.g. recon.mesh); needed for shading.
            layers: K; `self.layers` when None.
        """
        frags, clip_m = self.sample(vertices, faces, camera, layers)
        return self.evaluate(vertices, faces, camera, frags, clip_m, normals)

    def sample(
        self, vertices: torch.Tensor, faces: torch.Tensor, camera: Camera, layers: int | None = None
    ) -> tuple[Fragments, torch.Tensor]:
        """RtS sampling: the non-differentiable rasterization, and the (4, 4) clip matrix it used."""
        clip_m = torch.tensor(camera.clip_matrix(*_near_far(vertices, camera)), dtype=vertices.dtype, device=vertices.device)
        pos_clip = to_clip(vertices.detach(), clip_m)
        frags = rasterize(self.rasterizer, pos_clip, faces, (camera.height, camera.width), layers or self.layers)
        return frags, clip_m

    def evaluate(
        self,
        vertices: torch.Tensor,
        faces: torch.Tensor,
        camera: Camera,
        frags: Fragments,
        clip_m: torch.Tensor,
        normals: torch.Tensor | None = None,
    ) -> GBuffer:
        """RtS evaluation: interpolate positions (and normals) with the fixed fragments; differentiable."""
        index, attrs = interpolate_covered(
            vertices if normals is None else torch.cat([vertices, normals], dim=-1), faces, frags
        )
        normal = None if normals is None else F.normalize(attrs[:, 3:], dim=-1, eps=1e-12)
        return GBuffer.from_samples(frags, index, attrs[:, :3], normal, camera, clip_m)

    def shade(self, gbuffer: GBuffer, shade: ShadeFn | None, where: torch.Tensor | None = None) -> torch.Tensor:
        """(K, H, W, C+1) premultiplied RGBA-like samples, 0 where empty: `shade_samples` made dense."""
        rows = self.shade_samples(gbuffer, shade, where)
        full = rows.new_zeros(gbuffer.covered.numel(), rows.shape[1]).index_copy(0, gbuffer.samples.index, rows)
        return full.reshape(*gbuffer.covered.shape, rows.shape[1])

    def shade_samples(self, gbuffer: GBuffer, shade: ShadeFn | None, where: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C+1) premultiplied RGBA-like rows of the covered samples: shade()'s colour, alpha 1.

        `where` (H, W) bool: shade only the samples of those pixels, colour 0 elsewhere (alpha is
        still 1): after splatting, the colour is exact wherever a pixel's 3×3 neighbourhood lies
        inside `where`, at the shader cost of `where` alone.
        """
        rows = gbuffer.samples
        alpha = torch.ones_like(rows.position[:, :1])
        if shade is None:
            return alpha
        if rows.normal is None:
            raise ValueError("shading needs vertex normals: pass normals= to render()/gbuffer()")
        if where is None:
            colour = shade(rows.position, rows.normal, rows.view_dir)
        else:
            keep = torch.nonzero(where.reshape(-1)[rows.index % where.numel()]).squeeze(1)
            shaded = shade(*(x.index_select(0, keep) for x in (rows.position, rows.normal, rows.view_dir)))
            colour = shaded.new_zeros(rows.index.shape[0], shaded.shape[1]).index_copy(0, keep, shaded)
        return torch.cat([colour, alpha.to(colour.dtype)], dim=-1)

    def splat(self, gbuffer: GBuffer, samples: torch.Tensor) -> torch.Tensor:
        """(H, W, C) RtS image of `shade_samples`' rows (`render.splat.splat_samples`)."""
        rows = gbuffer.samples
        return splat_samples(samples, rows.pixel_xy, rows.index, gbuffer.fragments.depth)

    def render(
        self,
        vertices: torch.Tensor,
        faces: torch.Tensor,
        camera: Camera,
        shade: ShadeFn | None = None,
        normals: torch.Tensor | None = None,
    ) -> RenderResult:
        """Image, coverage and G-buffer of a mesh; `shade=None` renders the silhouette only (C = 0)."""
        gbuffer = self.gbuffer(vertices, faces, camera, normals)
        if self.edges == "splat":
            return self.composite(gbuffer, shade)
        out = self._antialias(self.shade(gbuffer, shade)[0], vertices, faces, camera, gbuffer.fragments)
        return RenderResult(out[..., :-1], out[..., -1], gbuffer)

    def composite(self, gbuffer: GBuffer, shade: ShadeFn | None = None) -> RenderResult:
        """Shade a G-buffer (any surface's: mesh or isosurface) and splat its K layers (RtS)."""
        out = self.splat(gbuffer, self.shade_samples(gbuffer, shade))
        return RenderResult(out[..., :-1], out[..., -1], gbuffer)

    def render_isosurface(
        self,
        field: torch.Tensor | Callable[[torch.Tensor], torch.Tensor],
        surface: IsoMesh,
        camera: Camera,
        shade: ShadeFn | None = None,
        normals: str = "gradient",
    ) -> RenderResult:
        """Image, coverage and G-buffer of an isosurface (inside where f < level), by RtS.

        Sampling rasterizes `surface` (`render.isosurface.extract_isosurface` of the current
        values, once per step for all views); evaluation differentiates f at the sampled lattice
        edges only. Always splats: nvdiffrast's antialias needs differentiable mesh vertices.

        Args:
            field: the (nx, ny, nz) tensor of lattice values, or a torch function f((N, 3)) -> (N,),
                whose values `surface` was extracted from.
            surface: the extracted isosurface.
            camera: the view.
            shade: as for `render`; None renders the silhouette only.
            normals: "gradient" (∇f by autograd) or "face" (see `evaluate_isosurface`).
        """
        from render.isosurface import evaluate_isosurface, sample_isosurface

        samples = sample_isosurface(self.rasterizer, surface, camera, self.layers, self.device)
        dtype = field.dtype if isinstance(field, torch.Tensor) else None
        gbuffer = evaluate_isosurface(samples, field, camera, normals, dtype)
        return self.composite(gbuffer, shade)

    def _antialias(
        self, front: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor, camera: Camera, frags: Fragments
    ) -> torch.Tensor:
        """nvdiffrast's analytic edge antialiasing of the front layer (the CUDA alternative to splatting)."""
        clip_m = torch.tensor(camera.clip_matrix(*_near_far(vertices, camera)), dtype=vertices.dtype, device=vertices.device)
        return self.rasterizer.antialias(front, to_clip(vertices, clip_m), faces, frags)
