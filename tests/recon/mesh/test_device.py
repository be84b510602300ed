"""Everything stays on the device it came on (runs only where CUDA is available)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.mesh import check_mesh, laplacian_loss, normal_consistency_loss, remesh, sphere, visual_hull

pytestmark = pytest.mark.cuda
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_mesh_ops_losses_checks_and_remesh_stay_on_cuda():
    m = sphere(1.0, 3, device="cuda")
    assert m.device.type == "cuda"
    for t in (m.edges, m.face_adjacency, m.laplacian, m.vertex_normals(), m.face_normals(), m.bbox):
        assert t.device.type == "cuda"
    v = m.vertices.clone().requires_grad_()
    loss = laplacian_loss(v, m.laplacian) + normal_consistency_loss(v, m.faces, m.face_adjacency)
    loss.backward()
    assert v.grad.device.type == "cuda"
    assert check_mesh(m.vertices, m.faces, m.face_normals(), face_edges=m.face_edges) == []
    cpu = m.to("cpu")
    assert torch.allclose(cpu.laplacian.to_dense(), m.laplacian.to_dense().cpu())
    out = remesh(m)
    assert out.device.type == "cuda" and out.faces.dtype == torch.int64


@cuda
def test_visual_hull_on_cuda(meshes, sphere_ring):
    bbox = np.stack([meshes.sphere_center - 0.6, meshes.sphere_center + 0.6])
    assert visual_hull(sphere_ring, bbox, 16, device="cuda").device.type == "cuda"
