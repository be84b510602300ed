"""Concavity measures on a block with one slot 0.24 deep, against copies carved less, not at all, or deeper."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from recon import demo
from recon.concavity import cavity_depth, error_by_region, far_surface

TOP, DEPTH, HALF_WIDTH = 0.2, 0.24, 0.06


def _block(slot_depth: float | None) -> dict:
    """A recipe: a sharp box (top at y = TOP) with one stopped slot cut `slot_depth` down from its top (None: uncut)."""
    primitives = [{"name": "block", "op": "union", "material": "metal", "shape": "rounded_box",
                   "half_extents": [0.4, TOP, 0.3], "rounding": 0.0, "center": [0.0, 0.0, 0.0]}]  # fmt: skip
    if slot_depth is not None:
        primitives.append({"name": "slot", "op": "subtract", "material": None, "shape": "rounded_box", "measure": "depth",
                           "half_extents": [HALF_WIDTH, slot_depth, 0.2], "rounding": 0.0, "center": [0.0, TOP, 0.0]})  # fmt: skip
    return {
        "up": [0.0, 1.0, 0.0],
        "primitives": primitives,
        "materials": [{"name": "metal"}],
        "mesh": {"grid_resolution": 64, "grid_min": [-0.6, -0.6, -0.6], "grid_max": [0.6, 0.6, 0.6]},
    }


TRUTH = _block(DEPTH)


@pytest.fixture(scope="module")
def meshes() -> dict[str, trimesh.Trimesh]:
    shapes = {"truth": DEPTH, "half": DEPTH / 2, "filled": None, "deeper": DEPTH + 0.06}
    return {name: demo.build_mesh(_block(depth)) for name, depth in shapes.items()}


def _figures(meshes, name: str) -> dict:
    return demo.concavity_figures(TRUTH, meshes[name], meshes["truth"])


def test_the_truth_against_itself_is_carved_and_never_far(meshes):
    figures = _figures(meshes, "truth")
    assert figures["far_surface"]["far_fraction"] == 0.0 and figures["far_surface"]["far_error_share"] == 0.0
    slot = figures["cavities"]["slot"]
    assert slot["depth"] == pytest.approx(DEPTH, abs=1e-3)
    assert slot["carved"] == 1.0 and slot["mean_fill"] == 0.0
    assert slot["columns"] > 500


def test_a_slot_carved_half_way_measures_half(meshes):
    slot = _figures(meshes, "half")["cavities"]["slot"]
    assert slot["carved"] == pytest.approx(0.5, abs=0.02)
    assert slot["mean_fill"] == pytest.approx(0.5, abs=0.02)


def test_a_filled_slot_is_far_and_outside_the_true_surface(meshes):
    figures = _figures(meshes, "filled")
    slot = figures["cavities"]["slot"]
    assert slot["carved"] == pytest.approx(0.0, abs=0.01) and slot["mean_fill"] == pytest.approx(1.0, abs=0.01)
    far = figures["far_surface"]
    # the slot's walls and floor (0.3 of the block's 2.3 area) are far, bar a band of 1 % of the diagonal at the top
    assert 0.09 < far["far_fraction"] < 0.14
    assert far["far_outside_share"] == 1.0  # the reconstruction fills the slot: outside the true surface
    assert far["far_error_share"] > 0.95


def test_a_slot_dug_too_deep_is_far_and_inside_the_true_surface(meshes):
    figures = _figures(meshes, "deeper")
    slot = figures["cavities"]["slot"]
    assert slot["carved"] == pytest.approx(1.25, abs=0.02) and slot["mean_fill"] == pytest.approx(-0.25, abs=0.02)
    far = figures["far_surface"]
    assert far["far_fraction"] > 0.01 and far["far_outside_share"] == 0.0  # the true floor lies in the dug air


def test_far_surface_counts_area_at_the_threshold(meshes):
    """Moved by 1.5 % of the diagonal along each axis (2.6 % in all): nearly all far at a 1 % threshold (the
    moved slot's walls pass closer to the true slot's floor and corners), none at 3 %."""
    truth = meshes["truth"]
    moved = trimesh.Trimesh(truth.vertices + 0.015 * np.linalg.norm(truth.extents), truth.faces)
    assert far_surface(moved, truth)["far_fraction"] > 0.9
    assert far_surface(moved, truth, threshold_rel=0.03)["far_fraction"] == 0.0


def test_the_truth_against_itself_lies_on_its_surface_in_every_primitive(meshes):
    regions = _figures(meshes, "truth")["primitives"]
    assert list(regions) == ["block", "slot"]
    assert sum(r["area"] for r in regions.values()) == pytest.approx(1.0)
    assert regions["slot"]["area"] == pytest.approx(0.13, abs=0.03)  # the slot's walls and floor: 0.3 of 2.3
    assert all(abs(r["offset_rel"]) < 1e-6 for r in regions.values())


def test_a_filled_slot_holds_the_error_and_lies_outside(meshes):
    """The lid over the slot counts against the slot (its samples' nearest true surface is the slot's)."""
    regions = _figures(meshes, "filled")["primitives"]
    assert regions["slot"]["share"] > 0.95 and regions["block"]["share"] < 0.05
    assert sum(r["share"] for r in regions.values()) == pytest.approx(1.0)
    assert regions["slot"]["offset_rel"] > 0.01  # filled: the reconstruction outside the true surface
    assert abs(regions["block"]["offset_rel"]) < 0.001


def test_a_slot_dug_too_deep_lies_inside(meshes):
    regions = _figures(meshes, "deeper")["primitives"]
    assert regions["slot"]["share"] > 0.9 and regions["slot"]["offset_rel"] < -0.002


def test_faces_pushed_outwards_show_as_a_positive_offset_everywhere(meshes):
    truth = meshes["truth"]
    grown = trimesh.Trimesh(truth.vertices + 0.004 * truth.vertex_normals, truth.faces)
    regions = error_by_region(grown, truth, lambda points: np.zeros(len(points), dtype=int), 1)
    assert regions[0]["share"] == 1.0 and regions[0]["area"] == 1.0
    assert regions[0]["offset_rel"] == pytest.approx(0.004 / np.linalg.norm(truth.extents), rel=0.1)


def test_primitives_without_a_name_or_with_the_same_one_get_their_own():
    recipe = _block(DEPTH)
    recipe["primitives"][0].pop("name")
    recipe["primitives"].append(dict(recipe["primitives"][1]))
    assert demo.primitive_names(recipe) == ["primitive 0", "slot (1)", "slot (2)"]


def test_a_tool_that_carves_nothing_is_an_error(meshes):
    nowhere = lambda points: np.zeros(len(points), dtype=bool)  # noqa: E731
    with pytest.raises(ValueError, match="touches no part"):
        cavity_depth(meshes["half"], meshes["truth"], nowhere, np.array([0.0, 1.0, 0.0]), rim_band=0.01)


def test_only_carving_tools_take_a_depth_measure():
    recipe = _block(DEPTH)
    recipe["primitives"][0]["measure"] = "depth"
    with pytest.raises(ValueError, match="only subtract primitives"):
        demo.measured_tools(recipe)


def test_the_bundled_scenes_tag_their_concavities():
    assert [p["name"] for p in demo.measured_tools(demo.load_recipe())] == ["bowl"]
    assert len(demo.measured_tools(demo.load_recipe(scene="part"))) >= 2
