"""Relaxing a remeshed surface where it crosses itself (recon.mesh.relax)."""

from __future__ import annotations

import gpytoolbox
import numpy as np
import pytest
import torch
import trimesh

from recon.mesh import Mesh, check_mesh, self_intersecting_pairs
from recon.mesh.relax import _SameFacingProjection, closest_points_on_triangles, relax_crossings
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


def pushed_through_as_a_patch(mesh: Mesh, rings: int = 3) -> tuple[Mesh, torch.Tensor]:
    """The slab with an inner vertex of its top sheet and `rings` rings around it pushed through
    the bottom: the rings' means are then on the wrong side too, so smoothing alone does not
    find the top sheet again."""
    v = mesh.vertices.clone()
    top = torch.nonzero((v[:, 2] > 0.02) & (v[:, :2].abs().max(dim=1).values < 0.2)).flatten()
    patch = top[:1]
    for _ in range(rings):
        patch = torch.unique(mesh.faces[torch.isin(mesh.faces, patch).any(dim=1)].flatten())
    v[patch, 2] = -0.045
    return mesh.with_vertices(v), patch


def test_a_patch_on_the_wrong_sheet_is_put_back_onto_its_own_by_the_same_facing_relaxation() -> None:
    slab = thin_slab()
    broken, patch = pushed_through_as_a_patch(slab)
    assert len(self_intersecting_pairs(broken.vertices, broken.faces)) > 0
    assert relax_crossings(broken)[1] > 0  # umbrella smoothing alone leaves it crossing
    kept, problems, crossings = _relaxed_remesh(slab, broken, iteration=7)
    assert problems == [] and crossings == 0
    assert len(self_intersecting_pairs(kept.vertices, kept.faces)) == 0
    assert not check_mesh(kept.vertices, kept.faces)
    assert torch.allclose(kept.vertices[patch, 2], torch.full((len(patch),), 0.025), atol=1e-5)  # on the top sheet


def test_closest_points_on_triangles_match_gpytoolbox_in_every_region() -> None:
    generator = torch.Generator().manual_seed(3)
    tri = torch.rand((400, 3, 3), generator=generator, dtype=torch.float64)
    tri[:50, 2] = tri[:50, 0] + 1e-3 * (tri[:50, 1] - tri[:50, 0])  # slivers
    points = 2 * torch.rand((400, 3), generator=generator, dtype=torch.float64) - 0.5  # near and far: every region
    got = closest_points_on_triangles(points, tri[:, 0], tri[:, 1], tri[:, 2])
    for i, (p, t, q) in enumerate(zip(points.numpy(), tri.numpy(), got.numpy())):
        squared, _, bary = gpytoolbox.squared_distance(p[None], t, np.array([[0, 1, 2]]), use_cpp=True)
        assert np.linalg.norm(q - p) ** 2 == pytest.approx(float(squared[0]), rel=1e-9, abs=1e-12)
        if i >= 50:  # a sliver's barycentrics are ill-conditioned in the reference, its distance is not
            assert np.allclose(q, bary[0] @ t, atol=1e-9)


def test_a_point_by_the_other_sheet_is_projected_onto_the_sheet_that_faces_its_way() -> None:
    slab = thin_slab()
    points = torch.tensor([[0.1, 0.05, -0.03], [-0.2, 0.1, 0.03], [0.0, 0.0, 0.0]])
    up, down = torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, 0.0, -1.0])
    projected = _SameFacingProjection(slab)(points, torch.stack([up, down, up]))
    # Nearest to the first is the bottom sheet, to the second the top: each goes to the other.
    assert torch.allclose(projected, torch.tensor([[0.1, 0.05, 0.025], [-0.2, 0.1, -0.025], [0.0, 0.0, 0.025]]), atol=1e-6)
