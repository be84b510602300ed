"""The viewport's camera controller: orbit, pan, zoom, reset and snap-to-view, pure numpy, no Qt.

State is a pose (world→camera rotation R, a target point, the distance to it) and a vertical field
of view; `camera(width, height)` turns it into a `render.camera.Camera` for any widget size. `reset`
frames a box (the object's, set by `frame`; the cube [-1, 1]³ until then), so the object opens and
comes back with R in the middle of the view whatever the dataset's coordinates. Orbit
is a turntable about the scene's up axis (no roll creeps in) and a tilt about the camera's x axis.
A snapped view keeps the view's own intrinsics, letterboxed into the widget, so the rendered mesh
lines up with the photo pixel for pixel; the first orbit, pan or zoom leaves the snap.
All positions are in whatever space the caller uses (the viewer's: the normalised cube).
"""

from __future__ import annotations

import numpy as np

from render.camera import Camera

ORBIT_RADIANS_PER_PIXEL = 0.008
ZOOM_PER_STEP = 0.85  # distance factor per wheel notch
MAX_TILT = np.radians(89.0)
LEVEL_CAMERAS = 0.5  # length of the mean camera up below which the cameras are taken to be rolled


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues: rotation by `angle` radians about the unit `axis`."""
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def letterbox(camera: Camera, width: int, height: int) -> Camera:
    """`camera`'s view fitted whole into a width×height image, centred (the photo keeps its aspect)."""
    s = min(width / camera.width, height / camera.height)
    K = camera.K.copy()
    K[:2] *= s
    K[0, 2] += (width - s * camera.width) / 2
    K[1, 2] += (height - s * camera.height) / 2
    return Camera(K, camera.R, camera.t, width, height)


class OrbitCamera:
    """Turntable camera around a target; `up` is the scene's up direction (world units)."""

    def __init__(self, up: np.ndarray = (0.0, 1.0, 0.0), fov_deg: float = 40.0, radius: float = 1.2) -> None:
        self.up = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
        self.default_fov = self.fov_deg = float(fov_deg)
        self.centre = np.zeros(3)  # of the sphere `reset` frames
        self.radius = float(radius)  # the cube's, by default (objects rarely fill its corners)
        self.snapped: Camera | None = None
        self.at_home = True  # the pose is `reset`'s: a new frame may move it
        self.reset()

    # ---- pose -------------------------------------------------------------------------------
    def frame(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Make the box [lo, hi] what `reset` frames; the view moves only if it is still at home."""
        lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        self.centre = (lo + hi) / 2
        self.radius = max(float(np.linalg.norm(hi - lo)) / 2, 1e-3)
        if self.at_home:
            self.reset()

    def reset(self) -> None:
        """Frame the sphere around the box from the front, a little above."""
        self.snapped = None
        self.fov_deg = self.default_fov
        self.target = self.centre.copy()
        self.distance = self.radius / np.sin(np.radians(self.fov_deg) / 2) * 1.05
        front = np.cross(self.up, [1.0, 0.0, 0.0] if abs(self.up[0]) < 0.9 else [0.0, 0.0, 1.0])
        forward = -front / np.linalg.norm(front)  # looking along −front at the target
        self.R = self._look(forward)
        self.orbit(0.0, np.radians(20.0) / ORBIT_RADIANS_PER_PIXEL)  # 20° above
        self.at_home = True

    def _look(self, forward: np.ndarray) -> np.ndarray:
        z = forward / np.linalg.norm(forward)
        x = np.cross(z, self.up)
        if np.linalg.norm(x) < 1e-9:  # looking straight along up: any x will do
            x = np.cross(z, [1.0, 0.0, 0.0] if abs(z[0]) < 0.9 else [0.0, 0.0, 1.0])
        x /= np.linalg.norm(x)
        return np.stack([x, np.cross(z, x), z])

    @property
    def eye(self) -> np.ndarray:
        return self.target - self.distance * self.R[2]

    def orbit(self, dx: float, dy: float) -> None:
        """Drag by (dx, dy) pixels: turn about the up axis, tilt about the camera's x axis."""
        self._moved()
        yaw = -dx * ORBIT_RADIANS_PER_PIXEL
        tilt = dy * ORBIT_RADIANS_PER_PIXEL
        # Keep the view direction off the up axis so the turntable stays well defined.
        elevation = np.arcsin(np.clip(-self.R[2] @ self.up, -1, 1))
        tilt = float(np.clip(elevation + tilt, -MAX_TILT, MAX_TILT) - elevation)
        q = _rotation(self.R[0], -tilt) if abs(tilt) > 0 else np.eye(3)
        q = _rotation(self.up, yaw) @ q
        self.R = self.R @ q.T  # rotate the camera's axes (rows) about the target by q

    def pan(self, dx: float, dy: float, height: int) -> None:
        """Drag by (dx, dy) pixels: the point under the cursor follows it (at the target's depth)."""
        self._moved()
        focal = 0.5 * height / np.tan(np.radians(self.fov_deg) / 2)
        self.target = self.target - (dx * self.R[0] + dy * self.R[1]) * self.distance / focal

    def zoom(self, steps: float) -> None:
        """Wheel notches: positive moves closer."""
        self._moved()
        self.distance = float(np.clip(self.distance * ZOOM_PER_STEP**steps, 1e-3, 1e3))

    def focus(self, point: np.ndarray) -> None:
        """Orbit around `point` from here on: keep the direction, move so the point is centred."""
        self._moved()
        point = np.asarray(point, dtype=np.float64)
        self.distance = max(float((point - self.eye) @ self.R[2]), 1e-3)
        self.target = point

    def snap(self, camera: Camera) -> None:
        """Look through `camera` (same space as the target); orbiting then pivots at the framed box centre's depth."""
        self.snapped = camera
        self.at_home = False
        self.R = np.array(camera.R, dtype=np.float64)
        eye = camera.center
        depth = float((self.centre - eye) @ self.R[2])
        self.distance = max(depth, 1e-3)
        self.target = eye + self.distance * self.R[2]
        self.fov_deg = float(np.degrees(2 * np.arctan(0.5 * camera.height / camera.K[1, 1])))

    def _moved(self) -> None:
        """The user moved the view: it is neither a snapped photo's nor `reset`'s any more."""
        self.snapped = None
        self.at_home = False

    # ---- output -----------------------------------------------------------------------------
    def camera(self, width: int, height: int) -> Camera:
        """The current view as an OpenCV camera for a width×height image."""
        width, height = max(1, int(width)), max(1, int(height))
        if self.snapped is not None:
            return letterbox(self.snapped, width, height)
        f = 0.5 * height / np.tan(np.radians(self.fov_deg) / 2)
        K = np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
        return Camera(K, self.R, -self.R @ self.eye, width, height)


def scene_up(cameras: list[Camera]) -> np.ndarray:
    """The scene's up direction, from its cameras.

    Photographers hold cameras mostly level, so the mean 'up' (−y axis) of the cameras is up. When
    those cancel out (cameras rolled every which way, like the Middlebury rings' portrait shots),
    the cameras still stand around the object: up is then the normal of the plane their centres
    lie closest to, on the side they look down from.
    """
    if not cameras:
        return np.array([0.0, 1.0, 0.0])
    up = -np.mean([c.R[1] for c in cameras], axis=0)
    if np.linalg.norm(up) >= LEVEL_CAMERAS or len(cameras) < 3:
        norm = np.linalg.norm(up)
        return up / norm if norm > 1e-6 else np.array([0.0, 1.0, 0.0])
    centres = np.array([c.center for c in cameras])
    normal = np.linalg.svd(centres - centres.mean(axis=0))[2][2]
    looking = np.mean([c.R[2] for c in cameras], axis=0)
    return -normal if normal @ looking > 0 else normal
