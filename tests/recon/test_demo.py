"""The bundled demo scene: a small build checked against its own ground truth, and the cache logic."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import trimesh

from recon import demo
from recon.data.images import read_pixels
from render.camera import Camera

VIEWS, SIZE = 8, 64


def _small_recipe() -> dict:
    return demo.load_recipe(views=VIEWS, size=SIZE)


@pytest.fixture(scope="module")
def rasterizer() -> Iterator[Any]:
    """The project's GL rasterizer; skips with the reason when no EGL context can be made."""
    from render import make_rasterizer

    rasterizer = make_rasterizer("gl")
    try:
        assert rasterizer.renderer  # makes the context now
    except RuntimeError as exc:
        pytest.skip(f"no OpenGL 4.3+ context through EGL on this machine: {exc}")
    yield rasterizer
    rasterizer.release()


@pytest.fixture(scope="module")
def built(tmp_path_factory, rasterizer) -> Path:
    """A reduced demo (8 views, 64²) built through the public entry point into a temporary cache."""
    return demo.demo_dataset(tmp_path_factory.mktemp("cache"), recipe=_small_recipe())


def _names() -> list[str]:
    return [f"view_{i:03d}" for i in range(VIEWS)]


def _camera(folder: Path, name: str) -> Camera:
    K, R, t = (np.loadtxt(folder / f"{name}_{s}.txt") for s in "krt")
    return Camera(K, R, t, SIZE, SIZE)


def _gt_mesh(folder: Path) -> trimesh.Trimesh:
    return trimesh.load(folder / "gt_mesh.ply", process=False)


def _silhouette(rasterizer, mesh: trimesh.Trimesh, camera: Camera, bbox: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixel centres covered by the mesh, from the same GL rasterizer at 1×."""
    from render import rasterize, to_clip

    near, far = camera.near_far(demo.box_corners(bbox))
    clip = torch.as_tensor(camera.clip_matrix(near, far), dtype=torch.float32)
    pos = to_clip(torch.as_tensor(mesh.vertices, dtype=torch.float32), clip).contiguous()
    frags = rasterize(rasterizer, pos, torch.as_tensor(mesh.faces, dtype=torch.int64), (SIZE, SIZE), layers=1)
    return (frags.tri_id[0] >= 0).numpy()


def test_every_view_has_an_image_and_a_camera(built):
    for name in _names():
        rgba = read_pixels(built / f"{name}.png")
        assert rgba.shape == (SIZE, SIZE, 4)
        for suffix in "krt":
            assert (built / f"{name}_{suffix}.txt").is_file()
    assert not (built / f"view_{VIEWS:03d}.png").exists()
    bbox = np.loadtxt(built / "bbox.txt")
    assert bbox.shape == (2, 3) and (bbox[0] < bbox[1]).all()


def test_cameras_round_trip_through_text_exactly(built):
    for name, expected in zip(_names(), demo.ring_cameras(_small_recipe())):
        camera = _camera(built, name)
        np.testing.assert_array_equal(camera.K, expected.K)
        np.testing.assert_array_equal(camera.R, expected.R)
        np.testing.assert_array_equal(camera.t, expected.t)


def test_cameras_see_the_object_from_above_and_below(built):
    centers = np.stack([_camera(built, n).center for n in _names()])
    height = centers[:, 1] - np.mean(np.loadtxt(built / "bbox.txt")[:, 1])
    assert (height > 0.3).any() and (height < -0.3).any()


def test_ground_truth_mesh_is_closed_outward_holed_and_concave(built):
    mesh = _gt_mesh(built)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # consistent winding + positive volume = normals point outward
    assert mesh.euler_number <= 0  # genus ≥ 1: the handle leaves a through-hole
    assert mesh.volume < 0.9 * mesh.convex_hull.volume  # dents, groove and hole: far from convex
    assert 20_000 <= len(mesh.faces) <= 60_000
    bbox = np.loadtxt(built / "bbox.txt")
    assert (mesh.bounds[0] > bbox[0]).all() and (mesh.bounds[1] < bbox[1]).all()


def test_materials_cover_every_face(built):
    mesh = _gt_mesh(built)
    materials = np.load(built / "gt_materials.npy", allow_pickle=False)
    assert materials.shape == (len(mesh.faces),) and materials.dtype == np.int64
    assert set(np.unique(materials)) == set(range(len(_small_recipe()["materials"])))


def test_each_part_has_its_own_material(built):
    """Bowl floor (carved into the body) is clay, the handle's outer rim blue, the fin's tip red."""
    mesh = _gt_mesh(built)
    materials = np.load(built / "gt_materials.npy", allow_pickle=False)
    names = [m["name"] for m in _small_recipe()["materials"]]
    probes = {"clay": [0.0, 0.0, 0.0], "blue_glaze": [0.86, -0.06, 0.0], "red_enamel": [-0.85, 0.1, 0.0]}
    points = np.array(list(probes.values()))
    faces = np.linalg.norm(mesh.triangles_center[None] - points[:, None], axis=2).argmin(axis=1)
    assert [names[i] for i in materials[faces]] == list(probes)


def test_at_least_two_materials_show_in_the_images(built):
    pixels = np.concatenate([read_pixels(built / f"{n}.png").reshape(-1, 4) for n in _names()])
    r, g, b, a = pixels[pixels[:, 3] > 0.99].T
    classes = {
        "blue glaze": (b > r + 0.1) & (b > g),
        "red enamel": (r > 0.15) & (g < 0.45 * r) & (b < 0.45 * r),
        "clay": (r > b + 0.1) & (g > 0.5 * r) & (g < 0.85 * r),
    }
    seen = {name: int(hit.sum()) for name, hit in classes.items()}
    assert sum(count >= 20 for count in seen.values()) >= 2, seen


def test_masks_contain_every_projected_vertex(built):
    mesh = _gt_mesh(built)
    for name in _names():
        mask = read_pixels(built / f"{name}.png")[:, :, 3]
        grown = F.max_pool2d(torch.from_numpy(mask)[None, None], 3, stride=1, padding=1)[0, 0].numpy()
        uv, z = _camera(built, name).project(mesh.vertices)
        assert (z > 0).all() and (uv > 0).all() and (uv < SIZE).all()
        col, row = np.floor(uv).astype(int).T
        assert (grown[row, col] > 0).all(), name


def test_masks_match_the_rasterized_silhouette(built, rasterizer):
    mesh, bbox = _gt_mesh(built), np.loadtxt(built / "bbox.txt")
    for name in _names():
        mask = read_pixels(built / f"{name}.png")[:, :, 3] > 0.5
        silhouette = _silhouette(rasterizer, mesh, _camera(built, name), bbox)
        iou = (mask & silhouette).sum() / (mask | silhouette).sum()
        assert iou > 0.95, (name, iou)


def test_mask_edges_are_soft(built):
    mask = read_pixels(built / "view_000.png")[:, :, 3]
    partial = (mask > 0.05) & (mask < 0.95)
    assert 0 < partial.sum() < 0.5 * (mask > 0.5).sum()


def test_glossy_highlight_depends_on_the_view():
    recipe = _small_recipe()
    shading = demo.Shading.from_recipe(recipe)
    glossy = int(torch.argmax(shading.specular))
    light = shading.light_dirs[0]
    point, normal = torch.zeros(1, 3), light[None].clone()  # facing the key light
    mirror_eye = 3 * light  # looking straight down the highlight
    side = torch.linalg.cross(light, torch.tensor([0.0, 0.0, 1.0]))
    grazing_eye = 3 * F.normalize(light + 1.5 * side / side.norm(), dim=0)
    material = torch.tensor([glossy])
    at_mirror = demo.shade(shading, point, normal, mirror_eye, material)
    at_grazing = demo.shade(shading, point, normal, grazing_eye, material)
    assert (at_mirror - at_grazing).abs().max() > 0.3
    matte = torch.tensor([int(torch.argmin(shading.specular))])
    matte_change = demo.shade(shading, point, normal, mirror_eye, matte) - demo.shade(shading, point, normal, grazing_eye, matte)
    assert matte_change.abs().max() < 0.1


def test_loads_as_an_nds_scene(built):
    from recon.data import load

    scene = load(built)
    assert scene.format == "nds" and scene.bbox_source == "given" and len(scene.views) == VIEWS
    np.testing.assert_array_equal(scene.bbox, np.loadtxt(built / "bbox.txt"))
    for view, expected in zip(scene.views, demo.ring_cameras(_small_recipe())):
        np.testing.assert_array_equal(view.camera.R, expected.R)
        assert (view.mask > 0.5).any() and view.image.shape == (SIZE, SIZE, 3)


def test_second_call_reuses_the_cached_folder(built):
    stamp = (built / "view_000.png").stat().st_mtime_ns
    start = time.perf_counter()
    again = demo.demo_dataset(built.parent, recipe=_small_recipe())
    assert again == built and time.perf_counter() - start < 1.0
    assert (built / "view_000.png").stat().st_mtime_ns == stamp


def test_folder_name_follows_the_recipe():
    recipe = _small_recipe()
    changed = _small_recipe()
    changed["materials"][0]["albedo"] = [0.5, 0.5, 0.5]
    assert demo.recipe_hash(recipe) == demo.recipe_hash(_small_recipe())
    assert demo.recipe_hash(recipe) != demo.recipe_hash(changed)


@pytest.fixture
def fake_build(monkeypatch) -> list[dict]:
    """Replace the expensive build with one that writes a marker file; records each recipe built."""
    calls: list[dict] = []

    def build(recipe: dict, out: Path) -> None:
        calls.append(recipe)
        (out / "marker.txt").write_text(str(len(calls)))

    monkeypatch.setattr(demo.dataset, "build", build)  # where demo_dataset looks it up
    return calls


def test_cache_builds_once_then_again_when_the_recipe_changes(tmp_path, fake_build):
    first = demo.demo_dataset(tmp_path, recipe=_small_recipe())
    assert demo.demo_dataset(tmp_path, recipe=_small_recipe()) == first
    assert len(fake_build) == 1
    changed = _small_recipe()
    changed["lighting"]["ambient"] = 0.3
    second = demo.demo_dataset(tmp_path, recipe=changed)
    assert second != first and len(fake_build) == 2
    assert (first / "marker.txt").read_text() == "1" and (second / "marker.txt").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, second.name])  # no staging left


def test_rebuild_replaces_the_cached_folder(tmp_path, fake_build):
    first = demo.demo_dataset(tmp_path, recipe=_small_recipe())
    again = demo.demo_dataset(tmp_path, recipe=_small_recipe(), rebuild=True)
    assert again == first and (again / "marker.txt").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == [first.name]


def test_default_cache_dir_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert demo.default_cache_dir() == tmp_path / "reconstruct"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert demo.default_cache_dir() == Path.home() / ".cache" / "reconstruct"


def test_abandoned_staging_folders_are_removed(tmp_path, fake_build):
    stale, fresh = tmp_path / ".demo-v1-x.building-old", tmp_path / ".demo-v1-x.building-new"
    stale.mkdir()
    fresh.mkdir()
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (two_days_ago, two_days_ago))
    demo.demo_dataset(tmp_path, recipe=_small_recipe())
    assert not stale.exists() and fresh.exists()  # a recent one may belong to a running build


def test_a_competitor_finishing_first_wins(tmp_path, monkeypatch):
    """Another process renames its finished folder into place while we build: we use theirs."""
    target = tmp_path / f"demo-{demo.CACHE_VERSION}-{demo.recipe_hash(_small_recipe())}"

    def build(recipe: dict, out: Path) -> None:
        (out / "marker.txt").write_text("ours")
        target.mkdir()
        (target / "marker.txt").write_text("theirs")

    monkeypatch.setattr(demo.dataset, "build", build)  # where demo_dataset looks it up
    assert demo.demo_dataset(tmp_path, recipe=_small_recipe()) == target
    assert (target / "marker.txt").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_shipped_recipe_is_the_full_size_demo():
    recipe = demo.load_recipe()
    assert recipe["cameras"]["count"] >= 32 and recipe["image"]["width"] == recipe["image"]["height"] == 256
    assert len(recipe["materials"]) >= 2
