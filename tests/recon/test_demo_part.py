"""The second bundled scene, the machined part: a closed solid with one drilled hole, slots deeper
than wide that no silhouette shows but some camera sees the floor of, and a glossy material."""

from __future__ import annotations

import gpytoolbox
import numpy as np
import pytest
import trimesh

from recon import demo


@pytest.fixture(scope="module")
def recipe() -> dict:
    return demo.load_recipe(scene="part")  # all 40 cameras: only the mesh is built


@pytest.fixture(scope="module")
def mesh(recipe) -> trimesh.Trimesh:
    return demo.build_mesh(recipe)


def _inside(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    return gpytoolbox.fast_winding_number(np.asarray(points, dtype=np.float64), np.asarray(mesh.vertices), np.asarray(mesh.faces)) > 0.5


def _slots(recipe: dict) -> list[dict]:
    return demo.measured_tools(recipe)


def _floor_centre(slot: dict) -> np.ndarray:
    """The middle of a slot's floor (a box tool cutting down from above the top)."""
    return np.asarray(slot["center"]) - [0.0, slot["half_extents"][1], 0.0]


def test_is_a_closed_outward_solid_with_one_through_hole(mesh):
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    assert mesh.euler_number == 0  # genus 1: the hole drilled through boss and block
    assert 20_000 <= len(mesh.faces) <= 60_000  # about the pot's cost


def test_flat_faces_make_most_of_the_surface(mesh):
    normals = np.asarray(mesh.face_normals)
    axis_aligned = (np.abs(normals).max(axis=1) > 0.999) * np.asarray(mesh.area_faces)
    assert axis_aligned.sum() > 0.7 * mesh.area


def test_slots_are_empty_deeper_than_wide_and_closed_at_both_ends(recipe, mesh):
    slots = _slots(recipe)
    assert len(slots) >= 2
    for slot in slots:
        floor = _floor_centre(slot)
        half_width, _, half_length = slot["half_extents"]
        in_slot = floor + [[0.0, 0.03, 0.0], [0.0, 0.03, 0.8 * half_length], [0.7 * half_width, 0.1, 0.0]]
        beside = floor + [[1.6 * half_width, 0.03, 0.0], [0.0, 0.03, half_length + 0.04], [0.0, -0.03, 0.0]]
        assert not _inside(mesh, in_slot).any(), slot["name"]
        assert _inside(mesh, beside).all(), slot["name"]  # walls, ends and floor are solid
        figures = demo.concavity_figures(recipe, mesh, mesh)["cavities"][slot["name"]]
        assert figures["depth"] > 2 * half_width, slot["name"]
        assert figures["carved"] == pytest.approx(1.0) and figures["mean_fill"] == pytest.approx(0.0)


def test_some_cameras_see_each_slot_floor_and_the_rest_do_not(recipe, mesh):
    """Shading can carve a slot only if some view sees its floor; the slots are deep enough that most do not."""
    centres = np.stack([c.center for c in demo.ring_cameras(recipe)])
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    for slot in _slots(recipe):
        target = _floor_centre(slot) + [0.0, 1e-3, 0.0]
        towards = target - centres
        distance = np.linalg.norm(towards, axis=1)
        t, _, _ = gpytoolbox.ray_mesh_intersect(centres, towards / distance[:, None], vertices, faces)
        seen = np.asarray(t) > distance - 1e-2
        assert 1 <= seen.sum() <= 0.5 * len(centres), (slot["name"], int(seen.sum()))


def test_two_materials_one_of_them_glossy(recipe, mesh):
    materials = demo.face_materials(recipe, mesh)
    assert set(np.unique(materials)) == set(range(len(recipe["materials"])))
    assert max(m["specular"] for m in recipe["materials"]) >= 0.5


def test_cameras_see_the_part_from_above_and_below(recipe):
    heights = np.stack([c.center for c in demo.ring_cameras(recipe)])[:, 1]
    assert (heights > 2.0).any() and (heights < -1.0).any()


def test_carved_percent_reads_the_tools_from_a_datasets_recipe(recipe, mesh, tmp_path):
    import json

    assert demo.carved_percent(tmp_path, mesh, mesh) == {}  # not a demo dataset: nothing to measure
    (tmp_path / demo.RECIPE_FILE).write_text(json.dumps(recipe))
    assert demo.carved_percent(tmp_path, mesh, mesh) == {slot["name"]: 100.0 for slot in _slots(recipe)}
