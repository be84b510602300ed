"""Evaluation metrics: Chamfer accuracy/completeness, PSNR, SSIM, silhouette IoU."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from recon.eval import REFERENCE_MESH, chamfer, psnr, reference_mesh, sample_surface, silhouette_iou, ssim, topology

N = 50_000  # samples per surface: enough for ~0.01 sampling noise on a unit sphere, and quick


@pytest.fixture(scope="module")
def unit_sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=5)


def test_sampling_is_uniform_by_area_and_seeded() -> None:
    # Two triangles, the second with 3× the area of the first.
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [10, 0, 0], [13, 0, 0], [10, 1, 0]], float)
    f = np.array([[0, 1, 2], [3, 4, 5]])
    p = sample_surface(v, f, 40_000, np.random.default_rng(1))
    share = np.mean(p[:, 0] >= 10)
    assert abs(share - 0.75) < 0.01
    first = p[p[:, 0] < 10]
    assert np.all(first[:, :2] >= -1e-12) and np.all(first[:, 0] + first[:, 1] <= 1 + 1e-12)
    # Uniform inside the triangle: the centroid of the samples is the triangle's centroid.
    np.testing.assert_allclose(first[:, :2].mean(0), [1 / 3, 1 / 3], atol=0.01)
    np.testing.assert_array_equal(p, sample_surface(v, f, 40_000, np.random.default_rng(1)))


def test_mesh_against_itself_is_near_zero(unit_sphere: trimesh.Trimesh) -> None:
    r = chamfer(unit_sphere, unit_sphere, n_samples=N)
    assert r["accuracy"] < 0.02 and r["completeness"] < 0.02 and r["chamfer"] < 0.02
    assert r == chamfer(unit_sphere, unit_sphere, n_samples=N)  # seeded: reproducible


def test_distances_are_to_the_triangles_not_to_samples(unit_sphere: trimesh.Trimesh) -> None:
    # Two sample sets of one surface lie ~0.5·√(A/N) ≈ 0.004 apart; the triangles are at 0.
    r = chamfer(unit_sphere, unit_sphere, n_samples=N)
    assert r["chamfer"] < 1e-9
    flat = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]], process=False)
    lifted = trimesh.Trimesh([[0, 0, 0.25], [1, 0, 0.25], [0, 1, 0.25]], [[0, 1, 2]], process=False)
    assert chamfer(flat, lifted, n_samples=1000)["chamfer"] == pytest.approx(0.25, abs=1e-9)


def test_spheres_of_radius_1_and_1_1(unit_sphere: trimesh.Trimesh) -> None:
    bigger = trimesh.Trimesh(unit_sphere.vertices * 1.1, unit_sphere.faces, process=False)
    r = chamfer(unit_sphere, bigger, n_samples=N)
    assert r["accuracy"] == pytest.approx(0.1, abs=0.01)
    assert r["completeness"] == pytest.approx(0.1, abs=0.01)
    assert r["chamfer"] == pytest.approx((r["accuracy"] + r["completeness"]) / 2)
    # Fractions of the reference's (radius 1.1) bounding-box diagonal 2.2·√3.
    diag = 2.2 * math.sqrt(3)
    assert r["diagonal"] == pytest.approx(diag, rel=1e-6)
    for k in ("accuracy", "completeness", "chamfer"):
        assert r[f"{k}_rel"] == pytest.approx(r[k] / diag)


def test_missing_part_shows_in_completeness() -> None:
    box = trimesh.creation.box(extents=(1, 1, 1))
    half = trimesh.creation.box(extents=(1, 1, 0.5))
    half.apply_translation((0, 0, -0.25))  # the lower half of the box
    r = chamfer(half, box, n_samples=N)
    assert r["completeness"] > 2 * r["accuracy"]
    assert r["diagonal"] == pytest.approx(math.sqrt(3))


def test_reference_point_cloud_and_array_inputs(unit_sphere: trimesh.Trimesh) -> None:
    cloud = sample_surface(unit_sphere.vertices * 1.1, unit_sphere.faces, N, np.random.default_rng(5))
    r = chamfer((unit_sphere.vertices, unit_sphere.faces), cloud, n_samples=N)
    assert r["n_reference"] == N
    assert r["accuracy"] == pytest.approx(0.1, abs=0.01)
    r2 = chamfer(unit_sphere, torch.as_tensor(cloud), n_samples=N)
    assert r2["accuracy"] == pytest.approx(r["accuracy"])


def test_psnr() -> None:
    a = np.random.default_rng(0).random((32, 32, 3))
    assert psnr(a, a) == math.inf
    b = np.clip(a, 0.1, 0.9) + 0.1 * np.sign(np.random.default_rng(1).random(a.shape) - 0.5)
    # Noise of exactly ±0.1 → MSE 0.01 → 20 dB.
    assert psnr(np.clip(a, 0.1, 0.9), b) == pytest.approx(20.0)
    assert psnr(torch.as_tensor(a), torch.as_tensor(a + 0.01)) == pytest.approx(40.0)


def test_psnr_mask_ignores_uncovered_pixels() -> None:
    a = np.zeros((8, 8, 3))
    b = a.copy()
    b[:, 4:] = 1.0  # wrong only in the right half
    mask = np.zeros((8, 8))
    mask[:, :4] = 1
    assert psnr(a, b, mask=mask) == math.inf
    assert psnr(a, b, mask=1 - mask) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="mask"):
        psnr(a, b, mask=np.zeros((8, 8)))


def test_ssim() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((40, 48, 3))
    assert ssim(img, img) == pytest.approx(1.0)
    assert ssim(img[..., 0], img[..., 0]) == pytest.approx(1.0)
    noisy = np.clip(img + 0.2 * rng.standard_normal(img.shape), 0, 1)
    s = ssim(img, noisy)
    assert 0 < s < 0.9
    assert ssim(img, np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1)) > s  # less noise, more similar
    assert ssim(img, noisy, mask=np.ones((40, 48))) == pytest.approx(s)
    with pytest.raises(ValueError, match="at least"):
        ssim(img[:8], img[:8])


def test_ssim_of_a_constant_shift_is_luminance_only() -> None:
    # Constant images: σ = 0, so SSIM reduces to the luminance term (2μaμb + C1) / (μa² + μb² + C1).
    a, b = np.full((16, 16), 0.5), np.full((16, 16), 0.6)
    c1 = 0.01**2
    assert ssim(a, b) == pytest.approx((2 * 0.5 * 0.6 + c1) / (0.25 + 0.36 + c1), abs=1e-6)  # float32 filtering


def test_silhouette_iou() -> None:
    gt = np.zeros((10, 10))
    gt[:, :5] = 1
    pred = np.zeros((10, 10))
    pred[:, 2:7] = 0.9
    assert silhouette_iou(pred, gt) == pytest.approx(30 / 70)
    assert silhouette_iou(gt, gt) == 1.0
    assert silhouette_iou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0


def test_topology_counts_components_and_genus_of_closed_meshes() -> None:
    sphere, torus = trimesh.creation.icosphere(), trimesh.creation.torus(1.0, 0.3)
    assert topology(sphere) == {"components": 1, "euler": 2, "genus": 0, "watertight": True}
    assert topology(torus) == {"components": 1, "euler": 0, "genus": 1, "watertight": True}
    both = trimesh.util.concatenate([sphere, torus.apply_translation([4.0, 0.0, 0.0])])
    assert topology(both) == {"components": 2, "euler": 2, "genus": 1, "watertight": True}
    opened = topology((sphere.vertices, sphere.faces[1:]))
    assert opened["genus"] is None and not opened["watertight"] and opened["euler"] == 1


def test_reference_mesh_is_found_beside_a_dataset_folder_or_file(tmp_path) -> None:
    folder = tmp_path / "scene"
    folder.mkdir()
    transforms = folder / "transforms_train.json"
    transforms.write_text("{}")
    assert reference_mesh(folder) is None and reference_mesh(transforms) is None
    (folder / REFERENCE_MESH).mkdir()  # a folder of that name is not a mesh
    assert reference_mesh(folder) is None
    (folder / REFERENCE_MESH).rmdir()
    trimesh.creation.box().export(folder / REFERENCE_MESH)
    assert reference_mesh(folder) == folder / REFERENCE_MESH
    assert reference_mesh(transforms) == folder / REFERENCE_MESH
