"""Render a reconstructed mesh with its neural shader from any camera (evaluation, previews)."""

from __future__ import annotations

import numpy as np
import torch

from recon.mesh import Mesh
from recon.shader import NeuralShader, Normalization
from render.camera import Camera
from render.renderer import Renderer


@torch.no_grad()
def render_shaded(
    mesh_world: Mesh, shader: NeuralShader, normalization: Normalization, camera: Camera, renderer: Renderer
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) premultiplied RGB and (H, W) coverage of the shaded mesh seen by `camera`.

    The shader takes positions in the normalised cube, so world positions are mapped with the
    run's normalisation; normals and view directions are unchanged by a uniform scale.
    """
    centre, scale = normalization
    device = next(shader.parameters()).device
    offset = torch.tensor(centre, dtype=torch.float32, device=device)

    def shade(position: torch.Tensor, normal: torch.Tensor, view_dir: torch.Tensor) -> torch.Tensor:
        return shader((position - offset) * scale, normal, view_dir)

    mesh = mesh_world.to(device)
    out = renderer.render(mesh.vertices, mesh.faces, camera, shade=shade, normals=mesh.vertex_normals())
    return out.image.clamp(0, 1).cpu().numpy(), out.alpha.clamp(0, 1).cpu().numpy()
