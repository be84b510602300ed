"""Resampling a surface from its signed distance: a web across a ring's hole goes, the ring stays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from recon.eval import topology
from recon.mesh.clean import drop_small_components
from recon.mesh.level_set import extract_level_set
from recon.mesh.resample import nearest_points, resample_by_distance

MAJOR, MINOR = 0.55, 0.2  # a ring lying flat (y up); its hole is 0.7 across


def _ring_sdf(p: torch.Tensor) -> torch.Tensor:
    q = torch.stack([torch.linalg.norm(p[:, [0, 2]], dim=1) - MAJOR, p[:, 1]], dim=1)
    return torch.linalg.norm(q, dim=1) - MINOR


def _bar_sdf(p: torch.Tensor, half: float) -> torch.Tensor:
    """A square bar along x across the hole, `2 * half` thick, its ends inside the ring."""
    d = p.abs() - torch.tensor([MAJOR, half, half], dtype=p.dtype)
    return torch.linalg.norm(d.clamp(min=0), dim=1) + d.max(dim=1).values.clamp(max=0)


def _ring_with_bar(half: float) -> tuple[np.ndarray, np.ndarray]:
    field = lambda p: -torch.minimum(_ring_sdf(p), _bar_sdf(p, half))  # noqa: E731  (inside > 0)
    return extract_level_set(field, (-0.9, -0.4, -0.9), (0.9, 0.4, 0.9), resolution=24, refinements=3)


@pytest.mark.parametrize(("half", "genus"), [(0.02, 1), (0.12, 2)], ids=["web 0.04 thick goes", "bar 0.24 thick stays"])
def test_parts_thinner_than_the_grid_go_and_thicker_ones_stay(half, genus) -> None:
    v, f = _ring_with_bar(half)
    assert topology((v, f))["genus"] == 2  # the bar spans the hole: one handle more than the ring
    rv, rf = resample_by_distance(v, f, spacing=0.08)
    resampled = trimesh.Trimesh(rv, rf, process=False)
    assert topology(resampled) == {"components": 1, "euler": 2 - 2 * genus, "genus": genus, "watertight": True}
    assert resampled.volume > 0  # outward, as every mesh of the project
    if genus == 1:  # only the ring is left, where it was
        ring_distance = _ring_sdf(torch.from_numpy(rv)).abs()
        assert float(ring_distance.max()) < 0.02


def test_specks_are_dropped_and_the_largest_piece_always_kept() -> None:
    big, small = trimesh.creation.icosphere(3, radius=1.0), trimesh.creation.icosphere(2, radius=0.05)
    both = trimesh.util.concatenate([big, small.apply_translation([3.0, 0.0, 0.0])])
    v, f = drop_small_components(np.asarray(both.vertices), np.asarray(both.faces), min_share=0.01)
    assert len(f) == len(big.faces) and len(v) == len(big.vertices)
    v, f = drop_small_components(np.asarray(both.vertices), np.asarray(both.faces), min_share=0.0)
    assert len(f) == len(both.faces)
    v, f = drop_small_components(np.asarray(small.vertices), np.asarray(small.faces), min_share=2.0)  # nothing big enough
    assert len(f) == len(small.faces)


def test_a_spacing_that_is_not_positive_is_refused() -> None:
    v, f = _ring_with_bar(0.02)
    with pytest.raises(ValueError, match="spacing must be positive"):
        resample_by_distance(v, f, spacing=0.0)


def test_nearest_points_lie_on_the_mesh_along_the_way_back() -> None:
    sphere = trimesh.creation.icosphere(4, radius=1.0)
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(200, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    points = directions * rng.uniform(0.5, 1.5, size=(200, 1))
    nearest = nearest_points(points, sphere.vertices, sphere.faces)
    assert np.abs(np.linalg.norm(nearest, axis=1) - 1.0).max() < 2e-3  # on the sphere (its chords sag 1e-3 at most)
    assert np.einsum("nd,nd->n", nearest, directions).min() > 0.99  # straight in or out, not elsewhere
