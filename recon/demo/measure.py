"""A demo reconstruction's concavity figures, driven by its recipe (see `recon.concavity`).

Every scene gets `far_surface`, and `error_by_region` with each surface point given to the
primitive whose own surface is nearest (a slot's walls and floor to the slot, the faces around it
to the block); each primitive tagged `"measure": "depth"` (a carving tool, op subtract) gets
`cavity_depth` with the tool's own signed distance saying which points it carved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from recon.concavity import cavity_depth, error_by_region, far_surface
from recon.demo.scene import RECIPE_FILE, Recipe, primitive_sdf


def tool_tolerance(recipe: Recipe, prim: dict) -> float:
    """How far from a tool's own surface the carved surface may lie: a grid cell of the marching
    cubes that made the reference, or the blend, which rounds the tool's edges by up to about that."""
    spec = recipe["mesh"]
    cell = float(np.max(np.subtract(spec["grid_max"], spec["grid_min"]))) / (int(spec["grid_resolution"]) - 1)
    return max(cell, float(prim.get("blend", 0.0)))


def measured_tools(recipe: Recipe) -> list[dict]:
    """The recipe's primitives tagged for a depth measure; a tag on anything but a carving tool is an error."""
    tools = []
    for prim in recipe["primitives"]:
        kind = prim.get("measure")
        if kind is None:
            continue
        if kind != "depth" or prim["op"] != "subtract":
            raise ValueError(f"demo recipe: primitive {prim.get('name')!r}: only subtract primitives take \"measure\": \"depth\"")
        tools.append(prim)
    return tools


def primitive_names(recipe: Recipe) -> list[str]:
    """A name per primitive for reports: its own, "primitive i" without one, "name (i)" where names repeat."""
    names = [prim.get("name") or f"primitive {i}" for i, prim in enumerate(recipe["primitives"])]
    return [name if names.count(name) == 1 else f"{name} ({i})" for i, name in enumerate(names)]


def nearest_primitive(recipe: Recipe, points: np.ndarray) -> np.ndarray:
    """Index (N,) of the recipe primitive whose own surface lies nearest each point (smallest |SDF|)."""
    return np.argmin(np.abs(np.stack([primitive_sdf(prim, points) for prim in recipe["primitives"]])), axis=0)


def concavity_figures(recipe: Recipe, reconstruction: Any, reference: Any) -> dict[str, Any]:
    """{"far_surface": far_surface(...), "primitives": {name: error_by_region(...)'s figures},
    "cavities": {tool name: cavity_depth(...)}} of a reconstruction."""
    cavities = {}
    for prim in measured_tools(recipe):
        tol = tool_tolerance(recipe, prim)
        on_tool = lambda points, prim=prim, tol=tol: np.abs(primitive_sdf(prim, points)) <= tol  # noqa: E731
        cavities[prim["name"]] = cavity_depth(reconstruction, reference, on_tool, np.asarray(recipe["up"], dtype=np.float64), rim_band=tol)
    names = primitive_names(recipe)
    regions = error_by_region(reconstruction, reference, lambda points: nearest_primitive(recipe, points), len(names))
    return {"far_surface": far_surface(reconstruction, reference), "primitives": dict(zip(names, regions)), "cavities": cavities}


def carved_percent(dataset: Path, reconstruction: Any, reference: Any) -> dict[str, float]:
    """{tool name: % of its depth carved at the lowest point} for a demo dataset's tools; {} for other datasets."""
    recipe_file = Path(dataset) / RECIPE_FILE
    if not recipe_file.is_file():
        return {}
    cavities = concavity_figures(json.loads(recipe_file.read_text()), reconstruction, reference)["cavities"]
    return {name: round(100 * cavity["carved"], 1) for name, cavity in cavities.items()}
