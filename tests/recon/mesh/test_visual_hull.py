"""Visual hull of an analytic sphere from ring cameras; empty hulls fail clearly; sphere; load_mesh."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import trimesh

from recon.data.scene import View
from recon.errors import ReconstructError
from recon.mesh import EmptyHullError, MeshError, load_mesh, sphere, visual_hull


def _sphere_bbox(meshes, lo_pad=(0.6, 0.6, 0.6), hi_pad=(0.6, 0.6, 0.6)) -> np.ndarray:
    return np.stack([meshes.sphere_center - np.array(lo_pad), meshes.sphere_center + np.array(hi_pad)])


@pytest.mark.parametrize("pads", [((0.6, 0.6, 0.6), (0.6, 0.6, 0.6)), ((0.55, 0.7, 0.6), (0.65, 0.6, 0.9))])
def test_hull_of_sphere_contains_it_and_is_close(meshes, sphere_ring, pads):
    """Non-cubic bboxes give grids with nx ≠ ny ≠ nz: catches a wrong axis order for marching cubes."""
    bbox = _sphere_bbox(meshes, *pads)
    resolution = 32
    hull = visual_hull(sphere_ring, bbox, resolution)
    tm = hull.to_trimesh()
    cell = 1.1 * float(np.max(bbox[1] - bbox[0])) / (resolution - 1)
    d = np.linalg.norm(tm.vertices - meshes.sphere_center, axis=1) - meshes.sphere_radius
    assert d.min() > -cell  # contains the sphere, up to a grid cell
    assert d.max() < 2 * cell  # and hugs it: 26 views leave little uncarved
    assert tm.is_watertight
    sphere_volume = 4 / 3 * np.pi * meshes.sphere_radius**3
    assert tm.volume > 0 and abs(tm.volume - sphere_volume) < 0.1 * sphere_volume  # outward, right size
    assert len(tm.split(only_watertight=False)) == 1
    assert hull.vertices.dtype.is_floating_point and hull.faces.dtype.is_signed


def test_points_outside_some_images_are_not_carved_by_them(meshes, sphere_ring):
    """A view that sees only part of the bbox must not cut away the rest."""
    cam = sphere_ring[0].camera
    blind = View("blind", sphere_ring[0].image[:8], sphere_ring[0].mask[:8] * 0, cam.__class__(cam.K, cam.R, cam.t, cam.width, 8))
    tm = visual_hull([*sphere_ring, blind], _sphere_bbox(meshes), 24).to_trimesh()
    assert tm.is_watertight and tm.volume > 0.4  # top 8 rows see only background above the sphere


def test_empty_hull_raises_a_clear_error(meshes, sphere_ring):
    empty = [View(v.name, v.image, np.zeros_like(v.mask), v.camera) for v in sphere_ring]
    with pytest.raises(EmptyHullError, match="no grid point lies inside every mask") as info:
        visual_hull(empty, _sphere_bbox(meshes), 16)
    assert isinstance(info.value, ReconstructError)
    far_bbox = _sphere_bbox(meshes) + 5.0  # the object is not in this box
    with pytest.raises(EmptyHullError, match="inconsistent"):
        visual_hull(sphere_ring, far_bbox, 16)


def test_bbox_inside_the_object_warns(meshes, sphere_ring, caplog):
    inner = np.stack([meshes.sphere_center - 0.2, meshes.sphere_center + 0.2])
    with caplog.at_level(logging.WARNING):
        tm = visual_hull(sphere_ring, inner, 16).to_trimesh()
    assert "bbox may be too small or the masks inverted" in caplog.text
    assert tm.is_watertight  # clipped to the bbox, still closed


def test_bad_bbox_is_refused(sphere_ring):
    with pytest.raises(MeshError, match="bbox"):
        visual_hull(sphere_ring, np.array([[0.0, 0, 0], [1, 1, 0]]), 16)


def test_sphere_is_outward_and_centred():
    m = sphere(2.0, 2, center=(1.0, 0.0, 0.0))
    tm = m.to_trimesh()
    assert m.num_faces == 320 and tm.is_watertight and tm.volume > 0
    assert np.allclose(np.linalg.norm(tm.vertices - [1, 0, 0], axis=1), 2.0, atol=1e-5)


def test_load_mesh_reads_welds_and_orients(tmp_path):
    inside_out = trimesh.creation.icosphere(2)
    inside_out.faces = inside_out.faces[:, ::-1]
    path = tmp_path / "ball.stl"  # STL stores triangle soup: loading must weld it
    inside_out.export(path)
    m = load_mesh(path)
    tm = m.to_trimesh()
    assert m.num_vertices == 162 and tm.is_watertight and tm.volume > 0


def test_load_mesh_errors_name_the_file(tmp_path, caplog):
    with pytest.raises(MeshError, match="missing.ply"):
        load_mesh(tmp_path / "missing.ply")
    bad = tmp_path / "garbage.ply"
    bad.write_bytes(b"ply\nthis is not a mesh\n\x00\x01")
    with pytest.raises(MeshError, match="garbage.ply"):
        load_mesh(bad)
    open_mesh = trimesh.creation.icosphere(1)
    open_mesh.update_faces(np.arange(1, len(open_mesh.faces)))
    path = tmp_path / "open.obj"
    open_mesh.export(path)
    with caplog.at_level(logging.WARNING):
        load_mesh(path)
    assert "not watertight" in caplog.text
