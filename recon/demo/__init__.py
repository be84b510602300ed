"""The bundled demo scenes: procedural objects rendered into calibrated NDS datasets on first use.

Three scenes (`resources.DEMO_SCENES`): the pot (resources/demo_scene.json, the default), a
machined part (resources/part_scene.json: flat faces, deep slots, a drilled boss) and a thick
ring (resources/torus_scene.json: genus 1, its hole seen through by few views; the topology
benchmark).

- `scene`: a recipe, its signed-distance object, ground-truth mesh and per-face materials, and
  the camera ring;
- `render`: Blinn-Phong shading under fixed lights, drawn by the project's own rasterizer;
- `dataset`: the dataset folder, built once (NDS format via `recon.data.formats.nds.write`) and
  cached under a hash of the recipe;
- `measure`: how well a reconstruction carves the concavities the recipe tags (`recon.concavity`).
"""

from recon.demo.dataset import CACHE_VERSION, build, default_cache_dir, demo_dataset
from recon.demo.measure import carved_percent, concavity_figures, measured_tools, primitive_names
from recon.demo.render import Shading, Surface, box_corners, render_view, shade
from recon.demo.scene import (
    RECIPE_FILE,
    TRUE_MATERIALS,
    Recipe,
    bounding_box,
    build_mesh,
    face_materials,
    load_recipe,
    primitive_sdf,
    recipe_hash,
    ring_cameras,
    scene_sdf,
)

__all__ = [
    "CACHE_VERSION",
    "RECIPE_FILE",
    "TRUE_MATERIALS",
    "Recipe",
    "Shading",
    "Surface",
    "bounding_box",
    "box_corners",
    "build",
    "carved_percent",
    "build_mesh",
    "concavity_figures",
    "default_cache_dir",
    "demo_dataset",
    "face_materials",
    "load_recipe",
    "measured_tools",
    "primitive_names",
    "primitive_sdf",
    "recipe_hash",
    "render_view",
    "ring_cameras",
    "scene_sdf",
    "shade",
]
