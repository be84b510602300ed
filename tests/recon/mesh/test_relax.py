"""Relaxing a remeshed surface where it crosses itself (recon.mesh.relax)."""

from __future__ import annotations

import torch
import trimesh

from recon.mesh import Mesh, check_mesh, self_intersecting_pairs
from recon.mesh.relax import relax_crossings
from recon.methods.nds import _relaxed_remesh


def thin_slab() -> Mesh:
    """A closed 1 × 1 × 0.05 box, subdivided so its top and bottom are sheets 0.05 apart."""
    box = trimesh.creation.box(extents=(1.0, 1.0, 0.05))
    vertices, faces = trimesh.remesh.subdivide_to_size(box.vertices, box.faces, max_edge=0.1)
    welded = trimesh.Trimesh(vertices, faces, process=True)
    return Mesh(torch.tensor(welded.vertices, dtype=torch.float32), torch.tensor(welded.faces, dtype=torch.int64))


def snapped_through(mesh: Mesh) -> tuple[Mesh, int]:
    """The slab with one inner vertex of its top sheet pushed through the bottom, as a remesh's
    projection onto the wrong sheet leaves it."""
    v = mesh.vertices.clone()
    top = torch.nonzero((v[:, 2] > 0.02) & (v[:, :2].abs().max(dim=1).values < 0.3)).flatten()
    index = int(top[0])
    v[index, 2] = -0.045
    return mesh.with_vertices(v), index


def test_a_vertex_on_the_wrong_sheet_goes_back_and_nothing_else_moves() -> None:
    slab = thin_slab()
    assert len(self_intersecting_pairs(slab.vertices, slab.faces)) == 0
    broken, index = snapped_through(slab)
    assert len(self_intersecting_pairs(broken.vertices, broken.faces)) > 0
    relaxed, left = relax_crossings(broken)
    assert left == 0 and len(self_intersecting_pairs(relaxed.vertices, relaxed.faces)) == 0
    assert not check_mesh(relaxed.vertices, relaxed.faces)
    assert abs(float(relaxed.vertices[index, 2]) - 0.025) < 1e-5  # back on the top sheet: its ring's mean
    moved = (relaxed.vertices != broken.vertices).any(dim=1)
    ring = torch.zeros_like(moved)
    ring[broken.faces[(broken.faces == index).any(dim=1)].flatten()] = True
    assert bool(moved[index]) and not bool((moved & ~ring).any())  # only the crossing faces' vertices


def test_a_surface_that_does_not_cross_itself_is_returned_as_it_is() -> None:
    slab = thin_slab()
    relaxed, left = relax_crossings(slab)
    assert relaxed is slab and left == 0


def test_a_remesh_that_crossed_itself_is_kept_relaxed_instead_of_rejected() -> None:
    slab = thin_slab()
    broken, _ = snapped_through(slab)
    kept, problems, crossings = _relaxed_remesh(slab, broken, iteration=7)
    assert problems == [] and crossings == 0
    assert len(self_intersecting_pairs(kept.vertices, kept.faces)) == 0
