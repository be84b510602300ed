"""The checkered pot: the demo pot whose clay carries a solid checkerboard, a texture h(x) has to hold."""

from __future__ import annotations

import pytest
import torch

from recon import demo


@pytest.fixture(scope="module")
def shading() -> demo.Shading:
    return demo.Shading.from_recipe(demo.load_recipe(scene="checker"))


def test_the_clay_alternates_between_its_albedo_and_the_darker_cells(shading) -> None:
    recipe = demo.load_recipe(scene="checker")
    names = [m["name"] for m in recipe["materials"]]
    clay, glaze = names.index("clay"), names.index("blue_glaze")
    pattern = recipe["materials"][clay]["pattern"]
    period, contrast = pattern["period"], pattern["contrast"]
    normal, eye = torch.tensor([[0.0, 1.0, 0.0]]).expand(2, 3), torch.tensor([0.0, 5.0, 0.0])
    # Two points a cell apart along x, both well inside their cells, same normal and view.
    points = torch.tensor([[0.25 * period, 0.25 * period, 0.25 * period], [1.25 * period, 0.25 * period, 0.25 * period]])
    clays = torch.tensor([clay, clay])
    bright, dark = demo.shade(shading, points, normal, eye, clays)
    plain = demo.shade(demo.Shading.from_recipe(demo.load_recipe(scene="pot")), points, normal, eye, clays)
    assert torch.allclose(bright, plain[0])  # the bright cells are the plain clay
    recipe["materials"][clay]["specular"] = 0.0  # the white highlight is added after the albedo
    bright, dark = demo.shade(demo.Shading.from_recipe(recipe), points, normal, eye, clays)
    assert torch.allclose(dark, bright * (1 - contrast))
    untextured = demo.shade(shading, points, normal, eye, torch.tensor([glaze, glaze]))
    assert torch.allclose(untextured[0], untextured[1], atol=0.01)  # only the clay has a pattern (highlights move a little)


def test_the_checkered_pot_has_the_pots_geometry() -> None:
    pot, checker = demo.load_recipe(scene="pot"), demo.load_recipe(scene="checker")
    assert pot["primitives"] == checker["primitives"] and pot["cameras"] == checker["cameras"]


@pytest.mark.parametrize("pattern", [{"period": 0.0}, {"period": 0.1, "contrast": 1.5}])
def test_a_bad_pattern_names_the_material(pattern) -> None:
    recipe = demo.load_recipe(scene="pot")
    recipe["materials"][0]["pattern"] = pattern
    with pytest.raises(ValueError, match="'clay'.*period > 0"):
        demo.Shading.from_recipe(recipe)
