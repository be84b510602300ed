"""Deferred shading of one view with material edits: the torch path, for measurements and tests.

The front layer's G-buffer is shaded per pixel, with no splatting, as the viewer shades it: a
pixel's colour depends on its own sample only, so an edit changes exactly the pixels of its
region and leaves every other pixel bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recon.mesh import Mesh
from recon.shader import NeuralShader, Normalization
from render.camera import Camera
from render.renderer import Renderer
from recon.materials.discover import Materials
from render.viewer.features import FeatureEdits, apply_feature_edits


@dataclass(frozen=True)
class ShadedView:
    """rgb (H, W, 3) sRGB float32 (0 where empty); covered (H, W) bool; material (H, W) int64 (−1 empty or unknown)."""

    rgb: np.ndarray
    covered: np.ndarray
    material: np.ndarray


@torch.no_grad()
def shade_view(
    mesh_world: Mesh,
    shader: NeuralShader,
    normalization: Normalization,
    camera: Camera,
    renderer: Renderer,
    materials: Materials | None = None,
    edits: FeatureEdits | None = None,
) -> ShadedView:
    """Shade the front surface seen by `camera` (world units) with optional edits.

    Args:
        materials: to report each pixel's unedited material; None leaves `material` at −1.
        edits: applied between h and c; None shades the run as trained.
    """
    device = next(shader.parameters()).device
    mesh = mesh_world.to(device)
    gbuffer = renderer.gbuffer(mesh.vertices, mesh.faces, camera, normals=mesh.vertex_normals(), layers=1)
    covered = gbuffer.covered[0]
    centre, scale = normalization
    offset = torch.as_tensor(np.asarray(centre), dtype=torch.float32, device=device)
    x = (gbuffer.position[0][covered] - offset) * float(scale)
    h = shader.features(x)
    edited = apply_feature_edits(h, x, edits)
    colour = shader.color(edited, gbuffer.normal[0][covered], gbuffer.view_dir[0][covered])
    rgb = torch.zeros(*covered.shape, 3, dtype=torch.float32)
    rgb[covered.cpu()] = colour.float().cpu()
    material = torch.full(covered.shape, -1, dtype=torch.int64)
    if materials is not None:
        material[covered.cpu()] = materials.labels(h).cpu()
    return ShadedView(rgb.numpy(), covered.cpu().numpy(), material.numpy())
