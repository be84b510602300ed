"""Bounding-box estimation from masks and cameras: tight enough, never cutting, refusing nonsense."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from recon.data import bbox
from recon.data.bbox import estimate_bbox
from recon.data.scene import View
from recon.errors import DatasetError
from render.camera import Camera

# A ring of cameras above the equator sees a sphere's visual hull a little larger than the sphere
# (most below it); with the masks' slack and a cell of padding each face stays within this share
# of the diameter.
FACE_TOLERANCE = 0.15


def _sphere_box(sphere: tuple[np.ndarray, float]) -> np.ndarray:
    center, radius = sphere
    return np.stack([center - radius, center + radius])


def _with(view: View, *, mask: np.ndarray | None = None, camera: Camera | None = None) -> View:
    return View(view.name, view.image, view.mask if mask is None else mask, view.camera if camera is None else camera)


def test_box_contains_the_sphere_and_is_tight(known_views, known_sphere):
    box = estimate_bbox(known_views)
    tight = _sphere_box(known_sphere)
    diameter = 2 * known_sphere[1]
    assert box.shape == (2, 3)
    assert np.all(box[0] <= tight[0]) and np.all(box[1] >= tight[1]), (box, tight)
    assert np.all(np.abs(box - tight) <= FACE_TOLERANCE * diameter), (box - tight) / diameter


def test_box_follows_the_object_in_world_units(known_views, known_sphere):
    """Moving and scaling the world moves and scales the box: nothing depends on the origin or units."""
    shift, scale = np.array([100.0, -40.0, 7.0]), 0.01
    moved = []
    for v in known_views:
        cam = v.camera
        # X' = s X + d  ⇒  x_c = R (X' - d) / s + t  ∝  R X' + (s t - R d)
        moved.append(_with(v, camera=Camera(cam.K, cam.R, scale * cam.t - cam.R @ shift, cam.width, cam.height)))
    expected = estimate_bbox(known_views) * scale + shift
    np.testing.assert_allclose(estimate_bbox(moved), expected, atol=1e-3 * scale)
    center, radius = known_sphere
    tight = _sphere_box((center * scale + shift, radius * scale))
    assert np.all(expected[0] <= tight[0]) and np.all(expected[1] >= tight[1])


def test_object_partly_outside_some_images_is_not_cut(known_views, known_sphere):
    """Cropping away half of the sphere in every other view must not carve that half away."""
    cropped = []
    for i, v in enumerate(known_views):
        if i % 2:
            cam = v.camera
            cut = int(round(cam.K[0, 2]))  # keep only the right half: the sphere's left half leaves the image
            K = cam.K.copy()
            K[0, 2] -= cut
            camera = Camera(K, cam.R, cam.t, cam.width - cut, cam.height)
            v = View(v.name, v.image[:, cut:].copy(), v.mask[:, cut:].copy(), camera)
        cropped.append(v)
    box = estimate_bbox(cropped)
    tight = _sphere_box(known_sphere)
    assert np.all(box[0] <= tight[0]) and np.all(box[1] >= tight[1]), (box, tight)


def test_one_bad_mask_among_many_views_is_tolerated():
    """With many views one mask that misses part of the object does not cut the box."""
    from_views = _ring(24)
    broken = list(from_views)
    m = broken[3].mask.copy()
    m[:, : m.shape[1] // 2 + 2] = 0  # half of the silhouette lost
    broken[3] = _with(broken[3], mask=m)
    box = estimate_bbox(broken)
    tight = _sphere_box(_SPHERE)
    assert np.all(box[0] <= tight[0]) and np.all(box[1] >= tight[1]), (box, tight)


def test_cameras_in_opengl_axes_are_refused(known_views):
    flip = np.diag([1.0, -1.0, -1.0])  # camera y, z pointing the OpenGL way: the object is behind
    views = []
    for v in known_views:
        cam = v.camera
        views.append(_with(v, camera=Camera(cam.K, flip @ cam.R, flip @ cam.t, cam.width, cam.height)))
    with pytest.raises(DatasetError, match="disagree") as info:
        estimate_bbox(views, source="my_dataset")
    assert "my_dataset" in str(info.value)


def test_masks_that_no_shape_explains_are_refused(known_views):
    """Each mask a blob in an opposite corner: no point is inside them all."""
    views = []
    for i, v in enumerate(known_views):
        m = np.zeros_like(v.mask)
        if i % 2:
            m[:8, :8] = 1
        else:
            m[-8:, -8:] = 1
        views.append(_with(v, mask=m))
    with pytest.raises(DatasetError, match="disagree") as info:
        estimate_bbox(views, source="my_dataset")
    message = str(info.value)
    assert "my_dataset" in message and "empty" in message and "inverted" in message


@pytest.mark.parametrize("radius, refused", [(1.0, False), (0.45, True)])
def test_a_hull_explaining_little_of_the_masks_is_refused(radius, refused, caplog):
    """The agreement rule on its own: a hull must cover most of each mask when projected back.

    (A wrong convention that still leaves a non-empty hull leaves a small one; the end-to-end cases
    above end earlier, with an empty hull.)"""
    sils = [bbox._Silhouette.of(v) for v in _ring(24)]
    axis = np.linspace(-1, 1, 41)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    hull = grid[np.linalg.norm(grid, axis=1) <= radius]
    with caplog.at_level(logging.WARNING, logger="recon.data.bbox"):
        if refused:
            with pytest.raises(DatasetError, match="explains only .* disagree"):
                bbox._check_agreement(sils, hull, "x")
        else:
            bbox._check_agreement(sils, hull, "x")
            assert "explains only" not in caplog.text


def test_all_empty_masks_are_refused(known_views):
    with pytest.raises(DatasetError, match="every mask is empty"):
        estimate_bbox([_with(v, mask=np.zeros_like(v.mask)) for v in known_views], source="x")


def test_inconsistent_masks_warn(known_views, caplog):
    """Masks shifted by several pixels each way still give a box, with a warning that it may be small."""
    shifted = [_with(v, mask=np.roll(v.mask, (i * 7) % 20 - 10, axis=1 - i % 2)) for i, v in enumerate(known_views)]
    with caplog.at_level(logging.WARNING, logger="recon.data.bbox"):
        estimate_bbox(shifted, source="x")
    assert "explains only" in caplog.text


def test_no_views_is_refused():
    with pytest.raises(DatasetError, match="without views"):
        estimate_bbox([], source="x")


# --- a denser ring than the shared fixture, for the tolerance test ------------------------------

_SPHERE = (np.array([0.0, 0.0, 0.0]), 1.0)


def _ring(n: int, size: int = 96) -> list[View]:
    """`n` cameras on a ring at two heights looking at the unit sphere; masks drawn analytically."""
    center, radius = _SPHERE
    views = []
    for i in range(n):
        angle = 2 * np.pi * i / n
        eye = 4.0 * np.array([np.cos(angle), 0.5 * (-1) ** i, np.sin(angle)])
        cam = Camera.look_at(eye, center, np.array([0.0, 1.0, 0.0]), 45.0, size, size)
        v, u = np.mgrid[0:size, 0:size] + 0.5
        rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(cam.K).T @ cam.R
        rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
        oc = cam.center - center
        b = rays @ oc
        hit = (b**2 - (oc @ oc - radius**2)) > 0
        mask = hit.astype(np.float32)
        views.append(View(f"ring_{i:02d}", np.repeat(mask[:, :, None], 3, axis=2), mask, cam))
    return views


def test_fast_for_a_hundred_large_views():
    """100 views at 800×800 (the NeRF-synthetic size) in well under the 2 s budget of CPU time."""
    size, eyes = 800, []
    for i in range(100):  # a spiral over the upper hemisphere, like the Blender scenes' cameras
        height = 0.05 + 0.9 * i / 99
        angle = 2.4 * i
        ring = np.sqrt(1 - height**2)
        eyes.append(4.0 * np.array([ring * np.cos(angle), height, ring * np.sin(angle)]))
    cams = [Camera.look_at(e, np.zeros(3), np.array([0.0, 1.0, 0.0]), 40.0, size, size) for e in eyes]
    # Every camera sees the unit sphere from the same distance, centred: one disk serves all masks.
    v, u = np.mgrid[0:size, 0:size] + 0.5
    angle_to_axis = np.arctan(np.hypot(u - size / 2, v - size / 2) / cams[0].K[0, 0])
    disk = (angle_to_axis < np.arcsin(1 / 4.0)).astype(np.float32)
    views = [View(f"v{i}", np.zeros((1, 1, 3), np.float32), disk, cam) for i, cam in enumerate(cams)]
    start = time.process_time()
    box = estimate_bbox(views)
    spent = time.process_time() - start
    assert np.all(box[0] <= -1) and np.all(box[1] >= 1) and np.all(np.abs(box) < 1.3), box
    assert spent < 2.0, f"{spent:.2f} s of CPU time"
