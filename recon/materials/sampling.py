"""Area-uniform surface samples of a mesh and the shader's features h(x) at them.

Materials are statistics over the *surface*, not over vertices (remeshing makes vertex density
uneven), so every share and mean in this package is over area-uniform samples: a cluster's share
of the samples estimates its share of the surface area.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from recon.mesh import face_areas, vertex_normals
from recon.shader import NeuralShader

FEATURE_CHUNK = 65_536  # points per shader call: bounded memory on any mesh size


@dataclass(frozen=True)
class SurfaceSamples:
    """Points on a surface with their shading normals (CPU float32).

    Attributes:
        points: (N, 3) positions, in the coordinates of the vertices given (normalised for runs).
        normals: (N, 3) unit normals interpolated from area-weighted vertex normals, as the
            renderer shades them.
        faces: (N,) int64 index of the triangle each point lies on.
    """

    points: torch.Tensor
    normals: torch.Tensor
    faces: torch.Tensor

    def __len__(self) -> int:
        return int(self.points.shape[0])


def sample_surface(vertices: torch.Tensor, faces: torch.Tensor, count: int, seed: int = 0) -> SurfaceSamples:
    """`count` points uniform over the surface area, reproducible for a given seed.

    Args:
        vertices: (V, 3) float vertices.
        faces: (F, 3) int64 faces, counter-clockwise outward.
        count: number of points N (≥ 1).
        seed: seeds a private generator; the global RNG is untouched.
    """
    if count < 1:
        raise ValueError(f"need at least one sample, got {count}")
    v = vertices.detach().to("cpu", torch.float64)
    f = faces.detach().to("cpu", torch.int64)
    area = face_areas(v, f)
    if not bool(area.sum() > 0):
        raise ValueError("the mesh has no area to sample")
    generator = torch.Generator().manual_seed(int(seed))
    face = torch.multinomial(area, count, replacement=True, generator=generator)
    # Uniform barycentrics by the square-root trick (Osada et al. 2002).
    r1, r2 = torch.rand(2, count, dtype=torch.float64, generator=generator)
    s = r1.sqrt()
    bary = torch.stack((1.0 - s, s * (1.0 - r2), s * r2), dim=1)  # (N, 3)
    corners = f[face]  # (N, 3)
    points = (bary[..., None] * v[corners]).sum(dim=1)
    vn = vertex_normals(v, f)
    normals = F.normalize((bary[..., None] * vn[corners]).sum(dim=1), dim=-1, eps=1e-20)
    return SurfaceSamples(points.float(), normals.float(), face)


def _shader_place(shader: NeuralShader) -> tuple[torch.device, torch.dtype]:
    param = next(shader.parameters())
    return param.device, param.dtype


@torch.no_grad()
def surface_features(shader: NeuralShader, points: torch.Tensor) -> torch.Tensor:
    """h(x) (N, F) float32 on the CPU for normalised points (N, 3), in bounded chunks."""
    device, dtype = _shader_place(shader)
    out = [
        shader.features(chunk.to(device, dtype)).float().cpu()
        for chunk in points.split(FEATURE_CHUNK)
    ]
    return torch.cat(out) if out else points.new_zeros((0, shader.config.features))


@torch.no_grad()
def surface_colors(shader: NeuralShader, features: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """c(h, n, ω = n) (N, 3) sRGB float32: each point seen head-on, as `bake_vertex_colors` does."""
    device, dtype = _shader_place(shader)
    out = [
        shader.color(h.to(device, dtype), n.to(device, dtype), n.to(device, dtype)).float().cpu()
        for h, n in zip(features.split(FEATURE_CHUNK), normals.split(FEATURE_CHUNK))
    ]
    return torch.cat(out) if out else normals.new_zeros((0, 3))
