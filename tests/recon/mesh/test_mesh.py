"""Mesh: validation, connectivity cached and shared, conversions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from recon.mesh import Mesh


def test_dtypes_and_validation():
    m = Mesh(torch.zeros(3, 3, dtype=torch.float64), torch.tensor([[0, 1, 2]], dtype=torch.int32))
    assert m.vertices.dtype == torch.float32 and m.faces.dtype == torch.int64
    with pytest.raises(ValueError, match="vertices"):
        Mesh(torch.zeros(3, 2), torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="outside"):
        Mesh(torch.zeros(3, 3), torch.tensor([[0, 1, 3]]))
    with pytest.raises(ValueError, match="integers"):
        Mesh(torch.zeros(3, 3), torch.tensor([[0.0, 1, 2]]))


def test_connectivity_is_cached_and_shared_by_with_vertices(meshes):
    m = meshes.icosphere(2)
    L, adj, e = m.laplacian, m.face_adjacency, m.edges
    assert m.laplacian is L and m.face_adjacency is adj and m.edges is e
    moved = m.with_vertices(m.vertices * 2)
    assert moved.laplacian is L and moved.face_adjacency is adj
    assert m.detach().laplacian is L
    with pytest.raises(ValueError):
        m.with_vertices(m.vertices[:-1])


def test_vertex_normals_follow_the_given_vertices(meshes):
    m = meshes.icosphere(1)
    flipped_x = m.vertices * torch.tensor([-1.0, 1.0, 1.0])
    n = m.vertex_normals(flipped_x)  # mirrored vertices, same faces: normals point inwards now
    assert ((n * flipped_x).sum(dim=1) < 0).all()
    assert ((m.vertex_normals() * m.vertices).sum(dim=1) > 0).all()


def test_gradients_flow_through_with_vertices(meshes):
    m = meshes.icosphere(1)
    v = m.vertices.clone().requires_grad_()
    m.with_vertices(v).vertex_normals().sum().backward()
    assert v.grad is not None and v.grad.abs().sum() > 0


def test_trimesh_round_trip_and_bbox():
    box = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    m = Mesh.from_trimesh(box)
    assert torch.allclose(m.bbox, torch.tensor([[-0.5, -1.0, -1.5], [0.5, 1.0, 1.5]]))
    back = m.to_trimesh()
    assert np.array_equal(back.faces, box.faces) and np.allclose(back.vertices, box.vertices)
    assert back.is_watertight and back.volume > 0


def test_to_same_device_is_identity(meshes):
    m = meshes.cube()
    assert m.to("cpu") is m
    assert "V=8" in repr(m)
