"""The viewport's camera controller, without Qt: frames the cube, orbits about up, snaps exactly."""

from __future__ import annotations

import numpy as np

from app.orbit import OrbitCamera, letterbox, scene_up
from render.camera import Camera

CUBE = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)


def _inside(camera: Camera, points: np.ndarray) -> bool:
    uv, z = camera.project(points)
    return bool((z > 0).all() and (uv >= 0).all() and (uv[:, 0] <= camera.width).all() and (uv[:, 1] <= camera.height).all())


def test_reset_frames_the_cube_from_above() -> None:
    orbit = OrbitCamera(up=(0, 1, 0), radius=np.sqrt(3.0))
    cam = orbit.camera(320, 240)
    assert _inside(cam, CUBE)
    assert cam.center[1] > 0  # a little above
    np.testing.assert_allclose(cam.R @ cam.R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(cam.R) > 0


def test_orbit_keeps_distance_and_up_and_clamps_tilt() -> None:
    orbit = OrbitCamera(up=(0, 0, 1))
    distance = np.linalg.norm(orbit.eye - orbit.target)
    for _ in range(50):
        orbit.orbit(37.0, 23.0)
        assert np.isclose(np.linalg.norm(orbit.eye - orbit.target), distance)
        assert abs(orbit.R[0] @ np.array([0, 0, 1.0])) < 1e-9  # no roll: the x axis stays level
    assert -orbit.R[2] @ np.array([0, 0, 1.0]) <= np.sin(np.radians(89.0)) + 1e-9


def test_pan_moves_the_target_in_the_image_plane_and_zoom_approaches() -> None:
    orbit = OrbitCamera()
    before = orbit.camera(200, 200)
    centre_px = before.project(orbit.target[None])[0][0]
    orbit.pan(10.0, 0.0, 200)
    moved = before.project(orbit.target[None])[0][0]
    np.testing.assert_allclose(moved - centre_px, [-10.0, 0.0], atol=1e-6)  # target moved opposite the drag
    d = orbit.distance
    orbit.zoom(1)
    assert orbit.distance < d


def test_snap_reproduces_the_view_and_letterboxes() -> None:
    view = Camera.look_at(np.array([2.0, 1.0, 3.0]), np.zeros(3), np.array([0, 1.0, 0]), 35.0, 64, 48)
    orbit = OrbitCamera()
    orbit.snap(view)
    same = orbit.camera(64, 48)
    np.testing.assert_allclose(same.K, view.K)
    np.testing.assert_allclose(same.R, view.R)
    np.testing.assert_allclose(same.t, view.t, atol=1e-12)
    wide = orbit.camera(128, 48)  # pillarboxed: the photo's pixels map to the centred 64×48 block
    uv_view, _ = view.project(CUBE)
    uv_wide, _ = wide.project(CUBE)
    np.testing.assert_allclose(uv_wide, uv_view + [32.0, 0.0], atol=1e-9)
    orbit.orbit(1.0, 0.0)
    assert orbit.snapped is None  # moving leaves the snap, keeping the pose close
    assert np.allclose(orbit.camera(64, 48).center, view.center, atol=0.05)


def test_letterbox_and_scene_up() -> None:
    view = Camera.look_at(np.array([0.0, 0.0, 3.0]), np.zeros(3), np.array([0, 1.0, 0]), 35.0, 100, 50)
    boxed = letterbox(view, 100, 100)
    assert boxed.K[1, 2] == view.K[1, 2] + 25
    assert np.allclose(scene_up([view]), [0, 1, 0])


def test_focus_centres_a_point_and_keeps_the_direction() -> None:
    orbit = OrbitCamera()
    forward = orbit.R[2].copy()
    point = np.array([0.3, -0.2, 0.1])
    orbit.focus(point)
    cam = orbit.camera(100, 80)
    np.testing.assert_allclose(cam.project(point[None])[0][0], [50.0, 40.0], atol=1e-9)
    np.testing.assert_allclose(orbit.R[2], forward)


def test_scene_up_of_rolled_cameras_is_the_normal_of_their_ring() -> None:
    """Cameras rolled every which way (portrait shots) cancel out: their ring says where up is."""
    up = np.array([0.3, 0.9, -0.2]) / np.linalg.norm([0.3, 0.9, -0.2])
    side = np.cross(up, [1.0, 0.0, 0.0])
    side /= np.linalg.norm(side)
    other = np.cross(up, side)
    cameras = []
    for i in range(16):
        a = 2 * np.pi * i / 16
        eye = 3 * (np.cos(a) * side + np.sin(a) * other) + 0.8 * up  # a ring a little above the object
        roll = 90.0 if i % 2 else -90.0
        level = Camera.look_at(eye, np.zeros(3), up, 35.0, 64, 48)
        c, s = np.cos(np.radians(roll)), np.sin(np.radians(roll))
        R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ level.R  # rolled about the optical axis
        cameras.append(Camera(level.K, R, -R @ eye, 64, 48))
    assert np.linalg.norm(np.mean([c.R[1] for c in cameras], axis=0)) < 1e-9  # the cameras' own ups cancel
    np.testing.assert_allclose(scene_up(cameras), up, atol=1e-9)


def test_reset_frames_the_box_given_and_a_moved_view_stays() -> None:
    lo, hi = np.array([0.2, -0.9, 0.4]), np.array([0.6, -0.5, 0.9])
    orbit = OrbitCamera(up=(0, 1, 0))
    orbit.frame(lo, hi)  # still at home: the view moves to the box
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    cam = orbit.camera(320, 240)
    np.testing.assert_allclose(cam.project(((lo + hi) / 2)[None])[0][0], [160.0, 120.0], atol=1e-9)
    assert _inside(cam, corners)
    uv, _ = cam.project(corners)
    assert np.ptp(uv[:, 1]) > 0.4 * 240  # framed, not a speck
    orbit.orbit(50.0, 0.0)
    moved = orbit.camera(320, 240).center
    orbit.frame(lo - 1, hi - 1)  # a new box does not pull a view the user moved…
    np.testing.assert_allclose(orbit.camera(320, 240).center, moved)
    orbit.reset()  # …until they reset it
    np.testing.assert_allclose(orbit.camera(320, 240).project(((lo + hi) / 2 - 1)[None])[0][0], [160.0, 120.0], atol=1e-9)
