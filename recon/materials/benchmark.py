"""`reconstruct bench materials`: discovered materials against the demo's ground truth (numbers, not tests).

Two measures, both on a run of the demo scene:

- **IoU per true material.** The surface of the run is sampled densely and each sample labelled
  by its nearest centroid; each ground-truth face takes the label of the sample nearest to its
  centroid. Clusters are matched one-to-one to true materials by the Hungarian method
  (`scipy.optimize.linear_sum_assignment`, maximising total IoU); IoU is area-weighted over the
  ground-truth faces: area(cluster ∧ true) / area(cluster ∨ true).
- **Edit colour distance.** For each ordered pair (A, B), "replace all of A by B" is rendered on
  held-out views (cameras between the training ones). The measure is the mean over RGB of
  |mean colour of A's pixels after the edit − mean colour of B's pixels before it|, in linear
  RGB, pooled over the views; pixels outside A's region must be bit-identical (reported as the
  largest absolute change there).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from recon.demo.scene import RECIPE_FILE, TRUE_MATERIALS
from recon.errors import ReconstructError
from recon.eval import REFERENCE_MESH
from recon.export import srgb_to_linear
from recon.materials.discover import Materials, discover_materials
from recon.materials.edits import MaterialEdits, ReplaceMaterial, feature_edits
from recon.materials.run import RunAppearance, load_run_appearance
from recon.materials.sampling import sample_surface, surface_features
from recon.materials.views import shade_view
from recon.mesh import read_trimesh
from recon.run_folder import RunFolder
from render.camera import Camera
from render.renderer import Renderer

log = logging.getLogger(__name__)

DENSE_SAMPLES = 200_000


def match_materials(
    predicted: np.ndarray, truth: np.ndarray, weights: np.ndarray, k_predicted: int, k_true: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-true-material IoU after Hungarian matching, and the cluster matched to each (−1: none).

    Args:
        predicted, truth: (F,) labels of the same items; weights: (F,) their areas.
    """
    onehot_p = np.eye(k_predicted)[predicted] * weights[:, None]
    onehot_t = np.eye(k_true)[truth]
    intersection = onehot_p.T @ onehot_t  # (Kp, Kt)
    size_p = np.bincount(predicted, weights, minlength=k_predicted)
    size_t = np.bincount(truth, weights, minlength=k_true)
    iou = intersection / np.maximum(size_p[:, None] + size_t[None, :] - intersection, 1e-30)
    rows, cols = linear_sum_assignment(-iou)
    per_true = np.zeros(k_true)
    matched = np.full(k_true, -1)
    per_true[cols] = iou[rows, cols]
    matched[cols] = rows
    return per_true, matched


def face_labels(run: RunAppearance, materials: Materials, points_world: np.ndarray, seed: int = 0) -> np.ndarray:
    """Material id of arbitrary world points: that of the nearest dense sample of the run's surface."""
    samples = sample_surface(run.normalized_vertices(), run.mesh.faces, DENSE_SAMPLES, seed=seed)
    labels = materials.labels(surface_features(run.shader, samples.points)).numpy()
    centre, scale = run.normalization
    query = (np.asarray(points_world, dtype=np.float64) - np.asarray(centre)) * float(scale)
    _, nearest = cKDTree(samples.points.numpy()).query(query)
    return labels[nearest]


def held_out_cameras(recipe: dict, count: int) -> list[Camera]:
    """Cameras on a ring between the training ones: half-step azimuths and mid elevations."""
    spec, image = recipe["cameras"], recipe["image"]
    up = np.asarray(recipe["up"], dtype=np.float64)
    target = np.asarray(spec["target"], dtype=np.float64)
    lo, hi = np.radians(spec["elevation_deg"])
    i = np.arange(count)
    elevation = lo + (hi - lo) * (0.15 + 0.7 * ((i * 0.618) % 1.0))
    azimuth = 2 * np.pi * (i + 0.5) / count
    distance = float(np.mean(spec["distance"]))
    e1 = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    dirs = np.cos(elevation)[:, None] * (np.cos(azimuth)[:, None] * e1 + np.sin(azimuth)[:, None] * e2)
    dirs += np.sin(elevation)[:, None] * up
    return [
        Camera.look_at(target + distance * d, target, up, spec["fov_deg"], image["width"], image["height"]) for d in dirs
    ]


def edit_distances(
    run: RunAppearance, materials: Materials, cameras: list[Camera], renderer: Renderer
) -> list[dict]:
    """The edit colour distance (module docstring) for every ordered pair of materials."""
    base = [shade_view(run.mesh, run.shader, run.normalization, c, renderer, materials) for c in cameras]
    rows = []
    for a in range(materials.k):
        for b in range(materials.k):
            if a == b:
                continue
            edits = feature_edits(materials, MaterialEdits((ReplaceMaterial(a, b),)), run.normalization)
            edited_sum, edited_n, target_sum, target_n, outside = np.zeros(3), 0, np.zeros(3), 0, 0.0
            for camera, before in zip(cameras, base):
                after = shade_view(run.mesh, run.shader, run.normalization, camera, renderer, materials, edits)
                region = before.material == a
                edited_sum += srgb_to_linear(after.rgb[region]).sum(0)
                edited_n += int(region.sum())
                target = before.material == b
                target_sum += srgb_to_linear(before.rgb[target]).sum(0)
                target_n += int(target.sum())
                if (~region).any():
                    outside = max(outside, float(np.abs(after.rgb[~region] - before.rgb[~region]).max()))
            if edited_n == 0 or target_n == 0:
                continue
            gap = np.abs(edited_sum / edited_n - target_sum / target_n)
            rows.append({"source": a, "target": b, "distance": float(gap.mean()), "pixels": edited_n, "outside_max_change": outside})
    return rows


def bench_materials(run_dir: Path | str, dataset: Path | str | None = None, k: int | None = None, views: int = 12, seed: int = 0) -> dict:
    """IoU per true material at k (default: the number of true materials), the automatic k, edit distances."""
    run_dir = Path(run_dir)
    if dataset is None:
        dataset = RunFolder(run_dir).dataset_source()
    dataset = Path(dataset)
    try:
        truth = np.load(dataset / TRUE_MATERIALS, allow_pickle=False)
        recipe = json.loads((dataset / RECIPE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ReconstructError(f"{dataset}: not a demo dataset with ground-truth materials ({exc})") from None
    gt = read_trimesh(dataset / REFERENCE_MESH)
    k_true = len(recipe["materials"])
    run = load_run_appearance(run_dir)
    verts, faces = run.normalized_vertices(), run.mesh.faces

    auto = discover_materials(run.shader, verts, faces, k=None, seed=seed)
    materials = auto if k is None and auto.k == k_true else discover_materials(run.shader, verts, faces, k=k or k_true, seed=seed)
    predicted = face_labels(run, materials, np.asarray(gt.triangles_center), seed=seed)
    iou, matched = match_materials(predicted, truth, np.asarray(gt.area_faces), materials.k, k_true)
    names = [m["name"] for m in recipe["materials"]]
    renderer = Renderer("auto")
    distances = edit_distances(run, materials, held_out_cameras(recipe, views), renderer)
    result = {
        "run": str(run_dir),
        "k": materials.k,
        "auto_k": auto.k,
        "silhouette": {str(key): value for key, value in auto.silhouette.items()},
        "iou": {names[t]: float(iou[t]) for t in range(k_true)},
        "matched_cluster": {names[t]: int(matched[t]) for t in range(k_true)},
        "min_iou": float(iou.min()),
        "edits": distances,
        "max_edit_distance": max((d["distance"] for d in distances), default=math.nan),
        "views": views,
    }
    log.info("materials bench: %s", result)
    return result


def format_materials_table(result: dict) -> str:
    """The bench result as lines of text."""
    lines = [f"materials at k = {result['k']} (automatic k = {result['auto_k']}; silhouette "
             + ", ".join(f"{k}: {v:.3f}" for k, v in result["silhouette"].items()) + ")"]
    lines += [f"  {name:<12} IoU {value:.3f}  (cluster {result['matched_cluster'][name]})" for name, value in result["iou"].items()]
    lines.append(f"edit 'replace A by B' on {result['views']} held-out views, |mean(A edited) − mean(B)| linear RGB:")
    lines += [
        f"  {d['source']} → {d['target']}: {d['distance']:.4f}  ({d['pixels']} px; outside changed by {d['outside_max_change']:.3g})"
        for d in result["edits"]
    ]
    return "\n".join(lines)
