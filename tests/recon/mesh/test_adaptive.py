"""Remeshing to per-vertex sizes: topology kept, sizes followed, creases refined."""

from __future__ import annotations

import gpytoolbox
import numpy as np
import torch
import trimesh

from recon.mesh import adaptive, ops
from recon.mesh.checks import check_mesh, self_intersecting_pairs


def _closed_ok(v: torch.Tensor, f: torch.Tensor, genus: int) -> trimesh.Trimesh:
    assert check_mesh(v.float(), f) == []
    assert len(self_intersecting_pairs(v.float(), f)) == 0
    mesh = trimesh.Trimesh(v.numpy(), f.numpy(), process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.euler_number == 2 - 2 * genus
    return mesh


def test_uniform_sizes_on_a_noisy_sphere_give_edges_near_the_target():
    v, f = gpytoolbox.icosphere(3)
    v = torch.tensor(v) + 0.002 * torch.randn(len(v), 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f = torch.tensor(f, dtype=torch.long)
    h = 0.5 * float(ops.edge_lengths(v, ops.edges(f)[0]).mean())
    u, g = adaptive.remesh_to_sizes(v, f, torch.full((len(v),), h, dtype=torch.float64))
    _closed_ok(u, g, genus=0)
    lengths = ops.edge_lengths(u, ops.edges(g)[0]) / h
    assert 0.9 < float(lengths.mean()) < 1.1
    assert float(lengths.min()) > 0.4 and float(lengths.max()) < adaptive.SPLIT * 1.3
    assert (u.norm(dim=1) - 1).abs().max() < 0.01  # on the input surface
    valence = torch.bincount(ops.edges(g)[0].reshape(-1))
    assert float((valence == 6).float().mean()) > 0.8


def test_a_torus_keeps_its_genus():
    mesh = trimesh.creation.torus(major_radius=1.0, minor_radius=0.35, major_sections=24, minor_sections=12)
    v, f = torch.tensor(mesh.vertices), torch.tensor(mesh.faces, dtype=torch.long)
    u, g = adaptive.remesh_to_sizes(v, f, torch.full((len(v),), 0.12, dtype=torch.float64))
    _closed_ok(u, g, genus=1)


def test_size_field_refines_a_cube_at_its_creases_and_grades_the_faces():
    mesh = trimesh.creation.box(extents=(1, 1, 1)).subdivide().subdivide().subdivide()
    v, f = torch.tensor(mesh.vertices), torch.tensor(mesh.faces, dtype=torch.long)
    sizes = adaptive.size_field(v, f, tolerance=0.002, shortest=0.04, longest=0.3, gradation=0.5)
    on_crease = (v.abs() > 0.499).sum(dim=1) >= 2
    assert float(sizes[on_crease].max()) < 0.06  # √(8·0.002/κ), κ ≈ (π/2) / 0.125 at a crease
    assert float(sizes[~on_crease].max()) > 0.2  # face centres, far from every crease
    e = ops.edges(f)[0]
    slope = (sizes[e[:, 0]] - sizes[e[:, 1]]).abs() / ops.edge_lengths(v, e)
    assert float(slope.max()) <= 0.5 + 1e-9

    u, g = adaptive.remesh_to_sizes(v, f, sizes)
    result = _closed_ok(u, g, genus=0)
    assert abs(result.volume - 1) < 0.01
    e = ops.edges(g)[0]
    middle = 0.5 * (u[e[:, 0]] + u[e[:, 1]])
    near_crease = (middle.abs() > 0.45).sum(dim=1) >= 2
    face_centre = (middle.abs() < 0.15).sum(dim=1) == 2
    lengths = ops.edge_lengths(u, e)
    assert float(lengths[near_crease].median()) < 0.6 * float(lengths[face_centre].median())


def test_an_open_patch_keeps_its_boundary_and_plane():
    v, f = gpytoolbox.regular_square_mesh(12)
    v = torch.tensor(np.c_[v, np.zeros(len(v))])
    f = torch.tensor(f, dtype=torch.long)
    u, g = adaptive.remesh_to_sizes(v, f, torch.full((len(v),), 0.08, dtype=torch.float64))
    patch = trimesh.Trimesh(u.numpy(), g.numpy(), process=False)
    assert abs(patch.area - 4.0) < 1e-9
    assert float(u[:, 2].abs().max()) == 0.0
    assert len(g) > 2 * len(f)  # refined from 2/11 ≈ 0.18 to 0.08
