"""Remeshing halves edges, keeps the surface, stays closed and manifold, refuses broken input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.mesh import Mesh, MeshError, check_mesh, remesh


def test_remesh_halves_mean_edge_and_keeps_surface(meshes):
    m = meshes.icosphere(2)  # 320 faces
    out = remesh(m)
    before, after = float(m.edge_lengths().mean()), float(out.edge_lengths().mean())
    assert 0.4 < after / before < 0.6
    assert 3 * m.num_faces < out.num_faces < 6 * m.num_faces
    tm = out.to_trimesh()
    assert tm.is_watertight and tm.volume > 0
    radius = np.linalg.norm(tm.vertices, axis=1)
    assert np.abs(radius - 1).max() < 0.02  # projected back onto the input (chords sit inside r = 1)
    assert out.vertices.dtype == torch.float32 and out.faces.dtype == torch.int64
    assert check_mesh(out.vertices, out.faces, self_intersections=True) == []


def test_remesh_to_given_length_and_detaches(meshes):
    m = meshes.icosphere(3)
    v = m.vertices.clone().requires_grad_()
    out = remesh(m.with_vertices(v), target_edge_length=0.3)
    assert not out.vertices.requires_grad
    assert 0.2 < float(out.edge_lengths().mean()) < 0.4


def test_remesh_repairs_duplicate_vertices_and_keeps_winding(meshes):
    cube = meshes.cube()
    # split vertex 0 into a coincident copy used by one face: welded before remeshing
    v = torch.cat([cube.vertices, cube.vertices[:1]])
    f = cube.faces.clone()
    f[f[:, 0] == 0, 0] = 8
    out = remesh(Mesh(v, f), target_edge_length=0.5)
    tm = out.to_trimesh()
    assert tm.is_watertight and 6.5 < tm.volume <= 8.0  # outward; corners get rounded (no feature edges)


def test_remesh_refuses_broken_meshes(meshes):
    m = meshes.icosphere(1)
    nan = m.vertices.clone()
    nan[3, 1] = float("nan")
    with pytest.raises(MeshError, match="NaN"):
        remesh(m.with_vertices(nan))
    fin = torch.cat([m.faces, torch.tensor([[0, 1, m.num_vertices]])])  # a third face on edge 0–1
    v = torch.cat([m.vertices, torch.tensor([[2.0, 2.0, 2.0]])])
    e = m.edges
    fin[-1, :2] = e[0]
    with pytest.raises(MeshError, match="non-manifold"):
        remesh(Mesh(v, fin))


def test_remesh_open_mesh_keeps_boundary_and_plane(meshes):
    grid = meshes.flat_grid(6)
    out = remesh(grid)
    assert out.num_faces > 2 * grid.num_faces
    assert float(out.vertices[:, 2].abs().max()) < 1e-6
    assert torch.allclose(out.bbox, grid.bbox)
    normals = out.face_normals()
    assert (normals[:, 2] > 0.99).all()  # winding kept
