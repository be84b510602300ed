"""How well a run's shaded mesh reproduces photos: one view (the GUI's held-out PSNR as a run
goes) or the views a run held out (`reconstruct eval DIR --views DATASET`).

Both compare over black: the photo is multiplied by its mask, the render is premultiplied by its
coverage, so a silhouette error costs PSNR as well as IoU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from recon.data.scene import View
from recon.eval import psnr, silhouette_iou
from recon.run_folder import RunAppearance, RunFolder
from recon.shaded_views import render_shaded
from render.renderer import Renderer

log = logging.getLogger(__name__)


def compare_view(run: RunAppearance, view: View, renderer: Renderer) -> dict[str, Any]:
    """{"name", "psnr", "silhouette_iou"} of `run` rendered from `view`'s camera against its photo."""
    rgb, alpha = render_shaded(run.mesh, run.shader, run.normalization, view.camera, renderer)
    target = view.image * view.mask[..., None]  # both over black
    return {"name": view.name, "psnr": psnr(rgb, target), "silhouette_iou": silhouette_iou(alpha, view.mask)}


def evaluate_run_views(run_dir: Path, dataset: Path, image_scale: float = 1.0, all_views: bool = False) -> dict[str, Any]:
    """PSNR (over black) and silhouette IoU of the run's shaded mesh on the views it held out.

    A run made with a hold-out (CLI --holdout or the GUI's) records the held-out names in
    run.json and exactly those are compared; `all_views` (or a run without a hold-out) compares
    every view of the dataset, training views included.
    """
    from recon.data import holdout, load

    folder = RunFolder(run_dir).require()
    names = [] if all_views else folder.heldout_names()
    run = folder.appearance()
    scene = load(dataset, image_scale=image_scale)
    views = holdout.split(scene, names)[1] if names else scene.views
    if not names:
        log.warning("%s: evaluating all %d views of %s (the run held none out, or --all-views)", run_dir, len(views), dataset)
    renderer = Renderer("auto")
    per_view = [compare_view(run, view, renderer) for view in views]
    return {
        "views": len(views),
        "split": "held-out" if names else "all",
        "psnr": float(np.mean([v["psnr"] for v in per_view])),
        "silhouette_iou": float(np.mean([v["silhouette_iou"] for v in per_view])),
        "per_view": per_view,
    }
