"""Material editing in feature space: discovery vs ground truth, edits, their file, baking, CLI."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import trimesh

from recon import cli
from recon.materials import (
    EditsFileError,
    MaterialEdits,
    Region,
    ReplaceMaterial,
    choose_k,
    feature_edits,
    fit_projection,
    kmeans,
    load_edits,
    load_materials,
    material_swatch,
    run_materials,
    sample_surface,
    save_edits,
    surface_features,
)
from recon.materials.benchmark import held_out_cameras, match_materials
from recon.materials.run import load_run_appearance
from recon.materials.views import shade_view

K_TRUE = 3
SAMPLES = 4000


@pytest.fixture(scope="module")
def materials(gt_material_run):
    """The run's clustering at the true k, stored in its folder (as `reconstruct materials --k 3` does)."""
    return run_materials(gt_material_run.folder, k=K_TRUE, samples=SAMPLES)[0]


@pytest.fixture(scope="module")
def renderer():
    from render.renderer import Renderer

    try:
        return Renderer("gl")
    except RuntimeError as exc:
        pytest.skip(f"no OpenGL for rendering views: {exc}")


def _normalized(run) -> tuple[torch.Tensor, torch.Tensor]:
    centre, scale = run.normalization
    v = (torch.tensor(np.asarray(run.mesh.vertices)) - torch.tensor(centre)) * scale
    return v.float(), torch.tensor(np.asarray(run.mesh.faces))


# ---- discovery ---------------------------------------------------------------------------------


def test_clusters_match_the_true_materials(gt_material_run, materials):
    """IoU ≥ 0.8 per true material (area-uniform samples, Hungarian matching) at k = #materials."""
    v, f = _normalized(gt_material_run)
    samples = sample_surface(v, f, SAMPLES, seed=1)  # other points than the clustering saw
    predicted = materials.labels(surface_features(gt_material_run.shader, samples.points)).numpy()
    truth = gt_material_run.materials[samples.faces.numpy()]
    iou, _ = match_materials(predicted, truth, np.ones(len(samples)), materials.k, K_TRUE)
    assert iou.min() >= 0.8, iou
    assert materials.k == K_TRUE
    assert float(materials.area_share.sum()) == pytest.approx(1.0)
    assert list(materials.area_share) == sorted(materials.area_share, reverse=True)


def test_kmeans_is_seeded_and_auto_k_finds_separated_groups():
    g = torch.Generator().manual_seed(3)
    centres = torch.randn(4, 8, generator=g) * 10
    x = (centres[torch.arange(400) % 4] + torch.randn(400, 8, generator=g)).float()
    a, b = kmeans(x, 4, seed=5), kmeans(x, 4, seed=5)
    assert torch.equal(a.centroids, b.centroids) and torch.equal(a.labels, b.labels)
    assert choose_k(x)[0] == 4


def test_projection_spans_the_main_directions():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 6, generator=g) * torch.tensor([5.0, 3.0, 2.0, 0.1, 0.1, 0.1])
    p = fit_projection(x)
    assert torch.allclose(p.basis @ p.basis.T, torch.eye(3), atol=1e-4)
    assert torch.allclose(p.basis[:, :3].abs(), torch.eye(3), atol=0.05)
    colour = p(x)
    assert colour.shape == (2000, 3) and float(colour.min()) >= 0 and float(colour.max()) <= 1


def test_swatch_is_a_shaded_ball(gt_material_run, materials):
    image = material_swatch(gt_material_run.shader, materials.representatives[0], size=32)
    assert image.shape == (32, 32, 3) and image.dtype == np.float32
    assert np.array_equal(image[0, 0], np.full(3, 0.5, np.float32))  # neutral background
    ball = image[8:24, 8:24]
    assert ball.std(axis=(0, 1)).max() > 0.01  # normals and view directions vary: shading shows
    rgba = material_swatch(gt_material_run.shader, materials.representatives[0], size=32, background=None)
    assert rgba.shape == (32, 32, 4) and rgba[0, 0, 3] == 0 and rgba[16, 16, 3] == 1


# ---- edits on rendered views -------------------------------------------------------------------


def _views(run, materials, renderer, edits=None, count=3):
    recipe = copy.deepcopy(run.recipe)
    recipe["image"]["width"] = recipe["image"]["height"] = 64
    appearance = load_run_appearance(run.folder)
    return [
        shade_view(appearance.mesh, appearance.shader, appearance.normalization, camera, renderer, materials, edits)
        for camera in held_out_cameras(recipe, count)
    ]


def _linear_mean(rgb: np.ndarray) -> np.ndarray:
    from recon.export import srgb_to_linear

    return srgb_to_linear(rgb).mean(axis=0)


def test_replace_moves_the_region_to_the_target_and_leaves_the_rest(gt_material_run, materials, renderer):
    """Mean colour of A's pixels after "A → B" within 0.05 of B's (mean |Δ| over linear RGB); rest bit-identical."""
    source, target = 1, 0
    before = _views(gt_material_run, materials, renderer)
    edits = feature_edits(materials, MaterialEdits((ReplaceMaterial(source, target),)), gt_material_run.normalization)
    after = _views(gt_material_run, materials, renderer, edits)
    region = [b.material == source for b in before]
    assert sum(int(r.sum()) for r in region) > 50
    edited = _linear_mean(np.concatenate([a.rgb[r] for a, r in zip(after, region)]))
    reference = _linear_mean(np.concatenate([b.rgb[b.material == target] for b in before]))
    original = _linear_mean(np.concatenate([b.rgb[r] for b, r in zip(before, region)]))
    assert np.abs(edited - reference).mean() <= 0.05
    assert np.abs(original - reference).mean() > 0.05  # the edit really moved something
    for a, b, r in zip(after, before, region):
        assert np.array_equal(a.rgb[~r], b.rgb[~r])


def test_region_edit_and_undo(gt_material_run, materials, renderer):
    original = _views(gt_material_run, materials, renderer, count=1)[0]
    # A brush stroke on material 0 where the first held-out camera sees it.
    run = load_run_appearance(gt_material_run.folder)
    vertex_material = materials.labels(surface_features(run.shader, run.normalized_vertices())).numpy()
    recipe = copy.deepcopy(gt_material_run.recipe)
    eye = held_out_cameras(recipe, 1)[0].center
    world = run.mesh.vertices.numpy()
    candidates = np.flatnonzero(vertex_material == 0)
    nearest = candidates[np.argmin(np.linalg.norm(world[candidates] - eye, axis=1))]
    history = [MaterialEdits()]
    region = Region(tuple(float(c) for c in world[nearest]), 0.3)
    history.append(history[-1].appended(ReplaceMaterial(0, 1, weight=0.5, region=region)))
    edited = _views(gt_material_run, materials, renderer, feature_edits(materials, history[-1], gt_material_run.normalization), 1)[0]
    changed = np.any(edited.rgb != original.rgb, axis=-1)
    assert changed.any() and np.all(original.material[changed] == 0)
    assert (original.material == 0).sum() > changed.sum()  # only part of material 0: the brushed ball
    undone = history[-2]  # what the undo stack restores
    again = _views(gt_material_run, materials, renderer, feature_edits(materials, undone, gt_material_run.normalization), 1)[0]
    assert np.array_equal(again.rgb, original.rgb)


# ---- the edits file ------------------------------------------------------------------------------


def test_edits_survive_save_and_load(tmp_path, materials):
    edits = MaterialEdits((
        ReplaceMaterial(1, 0),
        ReplaceMaterial(2, 1, weight=0.25, region=Region((0.1, -0.2, 0.3), 0.05)),
    ))
    path = save_edits(tmp_path / "edits.json", edits, materials)
    assert load_edits(path, materials) == edits
    assert edits.removed(0).operations == (edits.operations[1],)


def _good_document(materials) -> dict:
    return MaterialEdits((ReplaceMaterial(1, 0, 0.5, Region((0, 0, 0), 0.1)),)).to_dict(materials)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["edits"][0].update(source=7), "unknown material 7"),
        (lambda d: d["edits"][0].update(target="0"), "target must be a material id"),
        (lambda d: d["edits"][0].update(weight=1.5), "weight must be a number in [0, 1]"),
        (lambda d: d["edits"][0].update(weight=True), "weight must be a number in [0, 1]"),
        (lambda d: d["edits"][0]["region"].update(radius=-1), "radius must be a positive"),
        (lambda d: d["edits"][0]["region"].update(centre=[0, 0]), "centre must be 3 finite numbers"),
        (lambda d: d["edits"][0].update(op="paint"), "unknown op"),
        (lambda d: d.update(version=9), "unsupported version 9"),
        (lambda d: d["materials"].update(fingerprint="0" * 16), "another clustering"),
        (lambda d: d.update(edits={}), "\"edits\" must be a list"),
    ],
)
def test_bad_edits_are_refused_naming_the_file(tmp_path, materials, change, message):
    document = _good_document(materials)
    change(document)
    path = tmp_path / "bad_edits.json"
    path.write_text(json.dumps(document))
    with pytest.raises(EditsFileError) as info:
        load_edits(path, materials)
    assert str(path) in str(info.value) and message in str(info.value)


def test_edits_file_that_is_not_json_is_refused(tmp_path, materials):
    path = tmp_path / "edits.json"
    path.write_text("{oops")
    with pytest.raises(EditsFileError, match="not valid JSON"):
        load_edits(path, materials)


# ---- CLI -----------------------------------------------------------------------------------------


def test_cli_materials_json_reuses_the_stored_clustering(gt_material_run, materials, capsys):
    assert cli.main(["materials", str(gt_material_run.folder), "--k", str(K_TRUE), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stored"] is True and out["k"] == K_TRUE and out["fingerprint"] == materials.fingerprint
    assert [m["id"] for m in out["materials"]] == list(range(K_TRUE))
    assert sum(m["area_share"] for m in out["materials"]) == pytest.approx(1.0)
    assert all(m["hex"].startswith("#") and len(m["hex"]) == 7 for m in out["materials"])
    assert load_materials(gt_material_run.folder).fingerprint == materials.fingerprint


def test_cli_export_with_edits_changes_the_edited_material_only(gt_material_run, materials, tmp_path, capsys):
    folder = gt_material_run.folder
    edits_path = save_edits(tmp_path / "edits.json", MaterialEdits((ReplaceMaterial(1, 0),)), materials)
    assert cli.main(["export", str(folder), "--out", str(tmp_path / "plain.ply")]) == 0
    assert cli.main(["export", str(folder), "--edits", str(edits_path), "--out", str(tmp_path / "edited.ply")]) == 0
    plain = trimesh.load(tmp_path / "plain.ply", process=False)
    edited = trimesh.load(tmp_path / "edited.ply", process=False)
    changed = np.any(plain.visual.vertex_colors != edited.visual.vertex_colors, axis=1)

    run = load_run_appearance(folder)
    vertex_material = materials.labels(surface_features(run.shader, run.normalized_vertices())).numpy()
    assert changed.any() and np.all(vertex_material[changed] == 1)
    assert changed.sum() >= 0.5 * (vertex_material == 1).sum()  # most of the material shows the edit


def test_cli_export_refuses_bad_edits(gt_material_run, materials, tmp_path, capsys):
    path = tmp_path / "edits.json"
    path.write_text(json.dumps({**_good_document(materials), "edits": [{"op": "replace", "source": 0, "target": 9}]}))
    assert cli.main(["export", str(gt_material_run.folder), "--edits", str(path), "--out", str(tmp_path / "x.ply")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "unknown material 9" in err
