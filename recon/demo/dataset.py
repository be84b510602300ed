"""The demo dataset on disk: rendered once into the NDS format, cached under a hash of its recipe.

`demo_dataset()` returns a folder in the NDS format (per view `name.png` RGBA, alpha = mask, and
`name_k.txt`, `name_r.txt`, `name_t.txt`; `bbox.txt`, written by `recon.data.formats.nds.write`)
plus the ground truth (`gt_mesh.ply`, `gt_materials.npy`: per-face material index into the
recipe's `materials`, and a copy of the recipe). It is built once under the user's cache
directory, in a folder named after a hash of the recipe, so editing the recipe rebuilds it and
the old folder is left alone.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from recon.data.formats import nds
from recon.data.scene import View
from recon.demo.render import Shading, Surface, render_view
from recon.demo.scene import RECIPE_FILE, TRUE_MATERIALS, Recipe, bounding_box, build_mesh, face_materials, load_recipe, recipe_hash, ring_cameras
from recon.eval import REFERENCE_MESH

log = logging.getLogger(__name__)

# Bump when the builder's output changes for the same recipe (the folder name carries it). Still v1
# since the views are written by nds.write: its camera text differs, the float64 values read back do not.
CACHE_VERSION = "v1"


def build(recipe: Recipe, out: Path) -> None:
    """Build the whole demo dataset described by `recipe` into the folder `out` (new, or empty)."""
    from render import make_rasterizer

    out = Path(out)
    start = time.perf_counter()
    mesh = build_mesh(recipe)
    materials = face_materials(recipe, mesh)
    bbox = bounding_box(mesh, float(recipe["mesh"]["bbox_padding"]))
    log.info("demo mesh: %d vertices, %d faces (%.1f s)", len(mesh.vertices), len(mesh.faces), time.perf_counter() - start)
    gt_ply = mesh.export(file_type="ply")  # before rendering: trimesh would add the normals it computes for it
    cameras = ring_cameras(recipe)
    surface, shading = Surface.from_mesh(mesh, materials), Shading.from_recipe(recipe)
    supersample = int(recipe["image"].get("supersample", 1))
    views = []
    with make_rasterizer("gl") as rasterizer:  # gl everywhere: the same images on every machine
        for i, camera in enumerate(cameras):
            image, mask = render_view(rasterizer, surface, camera, shading, bbox, supersample)
            views.append(View(f"view_{i:03d}", image, mask, camera))
            if (i + 1) % 10 == 0 or i + 1 == len(cameras):
                log.info("demo: rendered %d/%d views", i + 1, len(cameras))
    nds.write(views, bbox, out)
    (out / REFERENCE_MESH).write_bytes(gt_ply)
    np.save(out / TRUE_MATERIALS, materials, allow_pickle=False)
    (out / RECIPE_FILE).write_text(json.dumps(recipe, indent=2), encoding="utf-8")
    log.info("demo dataset built in %.1f s", time.perf_counter() - start)


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/reconstruct, or ~/.cache/reconstruct."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "reconstruct"


def demo_dataset(cache_dir: Path | None = None, rebuild: bool = False, recipe: Recipe | None = None) -> Path:
    """The demo dataset's folder, built on first use and reused afterwards.

    Args:
        cache_dir: where dataset folders live; default `default_cache_dir()`.
        rebuild: build again even when a finished folder exists.
        recipe: a recipe dict (default: the pot, `load_recipe()`); its hash names the folder.

    Safe with concurrent callers: each builds into its own temporary folder beside the target and
    renames it into place; whoever finishes second uses the first one's folder.
    """
    recipe = load_recipe() if recipe is None else copy.deepcopy(recipe)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / f"demo-{CACHE_VERSION}-{recipe_hash(recipe)}"
    if target.is_dir() and not rebuild:
        log.debug("demo dataset cached at %s", target)
        return target
    root.mkdir(parents=True, exist_ok=True)
    log.info("building the demo dataset in %s (first use; takes a little while)", target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=root))
    try:
        build(recipe, staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the dataset is ordinary user data
        _publish(staging, target, replace=rebuild)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_abandoned(root)
    return target


def _remove_abandoned(root: Path, older_than_s: float = 24 * 3600) -> None:
    """Delete staging folders left by builds that were killed (a day old: surely not running)."""
    now = time.time()
    for folder in root.glob(".demo-*.building-*"):
        try:
            if now - folder.stat().st_mtime > older_than_s:
                shutil.rmtree(folder, ignore_errors=True)
        except FileNotFoundError:  # another caller removed it meanwhile
            pass


def _publish(staging: Path, target: Path, replace: bool) -> None:
    """Rename a finished folder into place; keep a competitor's if it got there first (unless replacing)."""
    if replace and target.exists():
        retired = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}")
        try:
            target.rename(retired)
        except FileNotFoundError:
            pass
        shutil.rmtree(retired, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:
        if not target.is_dir():
            raise
        log.info("another process finished the demo dataset first; using %s", target)
