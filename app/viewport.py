"""The 3D viewport: a QOpenGLWidget that hands Qt's context to render.viewer's ViewerPipeline.

All GL drawing lives in `render.viewer`; this widget owns the context's lifetime, the camera
controller (`app.orbit`), input, and scheduling:

- Snapshots arrive as immutable values and are uploaded in `paintGL`, with Qt's context current.
- Qt renders into its own framebuffer object, which can change on resize, so it is re-detected
  (`ctx.detect_framebuffer(defaultFramebufferObject())`) at every paint.
- Neural shading on the CPU path is split: the G-buffer is captured on the UI thread (GL), the
  MLP runs on a pool thread (torch releases the GIL), and the colours are presented on a later
  paint. While the camera moves or a live run's mesh changes it renders at reduced scale; once
  both are still (REFINE_MS after the last move, and a live-view interval more after the last
  snapshot) it renders one frame at full scale. A steadily streaming run thus stays at the cheap
  scale, while a paused, stopped or slow one is refined. At most one shading job is in flight,
  so a slow CPU only lowers the frame rate of the neural image, never the UI's.
- `release()` frees every GL object with the context current; the window calls it on close,
  before QApplication goes away (moderngl objects freed after their context segfault at exit).
- What to draw (mode, wireframe, frusta, photo opacity) lives in an `app.view_state.ViewState`
  shared with the toolbar and the menus; the keys write there, and the widget redraws on its
  signals, so the controls always show what is drawn.
- Material editing feeds the "features" and "materials" modes and the edits through
  `set_shading_inputs` (one immutable `render.viewer.ShadingInputs`); like snapshots it is handed
  to the pipeline at the next paint, so a shading job never sees it change.
  In pick mode (or with Ctrl) a click reports the surface point under the cursor instead of orbiting,
  or why there is none. The point is read from the G-buffer of the frame on screen, whatever its scale.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial

import numpy as np
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QWheelEvent
from PySide6.QtOpenGLWidgets import QOpenGLWidget
from PySide6.QtWidgets import QLabel

from app.orbit import OrbitCamera
from app.view_state import MODES, ViewState
from render.camera import Camera
from render.viewer.inputs import NO_INPUTS, ShadingInputs

log = logging.getLogger(__name__)

MODE_KEYS = {getattr(Qt.Key, f"Key_{i + 1}"): mode for i, mode in enumerate(MODES)}
NEURAL_MODES = ("neural", "features", "materials")  # shaded by the MLP (a shading path), not by rasterisation
MOVING_SCALE = 0.35  # neural shading on CPU while the camera moves: this fraction of the pixels per side
REFINE_MS = 150  # full resolution this long after the last camera move (plus a live-view interval after a snapshot)
ARROW_PIXELS = 20.0  # orbit step of an arrow key, in drag pixels


@dataclass
class _ShadeResult:
    token: int
    frame: object
    colors: object
    seconds: float


class _ShadeSignals(QObject):
    done = Signal(object)  # _ShadeResult
    failed = Signal(str)


class _ShadeJob(QRunnable):
    """The torch half of CPU neural shading, off the UI thread."""

    def __init__(self, token: int, shade, weights, frame, signals: _ShadeSignals) -> None:
        super().__init__()
        self.token, self.shade, self.weights, self.frame, self.signals = token, shade, weights, frame, signals

    def run(self) -> None:
        start = time.perf_counter()
        try:
            colors = self.shade(self.weights, self.frame)
        except Exception as exc:  # reported on the UI thread; the viewport falls back to normals
            log.exception("CPU neural shading failed")
            self.signals.failed.emit(f"{exc.__class__.__name__}: {exc}")
            return
        self.signals.done.emit(_ShadeResult(self.token, self.frame, colors, time.perf_counter() - start))


class Viewport(QOpenGLWidget):
    """Shows the current mesh; orbit (left drag), pan (right/middle or shift-drag), zoom (wheel),
    focus on a surface point (double-click), pick a surface point (click in pick mode, or
    Ctrl+click); keys: 1–6 modes, W wireframe, C cameras, R reset, [ ] previous/next input view,
    arrows orbit, +/− zoom."""

    fps_changed = Signal(float)
    camera_moved = Signal()
    view_snapped = Signal(int)
    surface_picked = Signal(object)  # (3,) float64 normalised point under a pick click
    pick_missed = Signal(str)  # why a pick click found no surface point
    paths_changed = Signal()  # the shading paths are known (GL is up) or one was switched / dropped

    def __init__(self, parent=None, view_state: ViewState | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(320, 240)
        self.orbit = OrbitCamera()
        self.view_state = view_state if view_state is not None else ViewState(self)
        self.view_state.mode_changed.connect(self._on_mode_changed)
        self.view_state.wireframe_changed.connect(lambda _: self.update())
        self.view_state.frusta_changed.connect(self._on_frusta_changed)
        self.view_state.opacity_changed.connect(self._on_opacity_changed)
        self.overlay_enabled = True
        self.ctx = None
        self.pipe = None
        self.error: str | None = None
        self.snapshot = None
        self.preview: tuple[np.ndarray, np.ndarray] | None = None  # (vertices, faces) shown while there is no snapshot
        self._mesh_dirty = False
        self._frusta_dirty = False
        self._overlay_dirty = False
        self.view_cameras: list[Camera] = []  # dataset views in the normalised cube
        self.view_images: list[np.ndarray] = []
        self.snapped_view: int | None = None
        self.frames = 0
        self.last_stats = None
        self._frame_times: list[float] = []
        self._drag_pos = None
        self._moving = False
        self._token = 0
        self._inflight = False
        self._ready: _ShadeResult | None = None
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._weights = None  # render.viewer.MLPWeights of the current snapshot
        self.shading = NO_INPUTS  # projection, edits, material cells and highlight of the neural modes
        self._extras_dirty = False
        self.pick_mode = False
        self._press_pick = False
        self._shown_path: str | None = None
        self.live_rate = 0.0  # snapshots per second a run is feeding (0: none); sets when the mesh counts as still
        self._mesh_changing = False  # a live snapshot came within the last interval: shade at reduced scale
        self.shade_ms = 0.0
        self.shade_jobs = 0  # CPU neural shadings started (for measuring the live view's cost)
        self._shade_signals = _ShadeSignals()
        self._shade_signals.done.connect(self._on_shaded)
        self._shade_signals.failed.connect(self._on_shade_failed)
        self._refine = QTimer(self)
        self._refine.setSingleShot(True)
        self._refine.setInterval(REFINE_MS)
        self._refine.timeout.connect(self._stop_moving)
        self._mesh_still = QTimer(self)
        self._mesh_still.setSingleShot(True)
        self._mesh_still.timeout.connect(self._mesh_settled)
        self.fps_label = QLabel(self)
        self.fps_label.setStyleSheet("color: #ddd; background: rgba(0,0,0,110); padding: 2px 5px;")
        self.fps_label.move(6, 6)
        self.fps_label.resize(0, 0)
        self.message = QLabel(self)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #ccc;")
        self.message.setText("Drop a dataset folder here, then press Start.")

    # ---- GL lifetime --------------------------------------------------------------------------
    def initializeGL(self) -> None:
        import moderngl

        try:
            from render.viewer import ViewerPipeline

            self.ctx = moderngl.create_context()
            self.pipe = ViewerPipeline(self.ctx)
            log.info("viewport: OpenGL %s (%s); shading paths %s, using %s",
                     self.ctx.info.get("GL_VERSION", "?"), self.ctx.info.get("GL_RENDERER", "?"),
                     self.pipe.available_paths(), self.pipe.path)
        except Exception as exc:  # no usable GL or no pipeline: the rest of the app keeps working
            self.error = f"3D view unavailable: {exc.__class__.__name__}: {exc}"
            log.error("%s", self.error)
            self.message.setText(self.error)
            self.pipe = None
        self._mesh_dirty = self._frusta_dirty = self._overlay_dirty = self._extras_dirty = True
        self.paths_changed.emit()

    def release(self) -> None:
        """Free GL objects in their own context (call before the window and QApplication go)."""
        self._refine.stop()
        self._mesh_still.stop()
        self._pool.waitForDone()
        self._ready = None
        if self.pipe is None and self.ctx is None:
            return
        self.makeCurrent()
        try:
            if self.pipe is not None:
                self.pipe.release()
        finally:
            self.pipe = None
            self.ctx = None
            self.doneCurrent()

    # ---- shading paths ------------------------------------------------------------------------
    def paths(self) -> tuple[list[str], dict[str, str]]:
        """(usable paths, fastest first; why each other one is not usable); empty before GL is up."""
        if self.pipe is None:
            return [], {}
        return self.pipe.available_paths(), self.pipe.unavailable_reasons()

    @property
    def path(self) -> str | None:
        return self.pipe.path if self.pipe is not None else None

    def set_path(self, name: str) -> None:
        """Switch the shading path (GL objects of the old one are freed in this context)."""
        if self.pipe is None or name == self.pipe.path:
            return
        self.makeCurrent()
        try:
            self.pipe.set_path(name)
        finally:
            self.doneCurrent()
        self._ready = None  # colours of another path must not be presented as this one's
        self._token += 1
        self.paths_changed.emit()
        self.update()

    # ---- material editing inputs --------------------------------------------------------------
    def set_shading_inputs(self, inputs: ShadingInputs) -> None:
        """What the "features"/"materials" modes and the edits need, from the materials model."""
        self.shading = inputs
        self._extras_changed()

    def set_pick_mode(self, on: bool) -> None:
        """A plain left click picks a surface point instead of starting an orbit."""
        self.pick_mode = bool(on)
        self.setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.ArrowCursor)

    def _extras_changed(self) -> None:
        self._extras_dirty = True
        self._token += 1
        self.update()

    # ---- inputs from the window ---------------------------------------------------------------
    def set_views(self, cameras: list[Camera], images: list[np.ndarray], up: np.ndarray) -> None:
        """The dataset's cameras (normalised cube) and photos, for frusta, snapping and the overlay."""
        self.view_cameras, self.view_images = list(cameras), list(images)
        self.snapped_view = None
        self.orbit = OrbitCamera(up=up)
        self._frusta_dirty = self._overlay_dirty = True
        if self.error is None:
            self.message.setText("")  # "Drop a dataset here" is done; a GL error stays
        self.update()

    def set_preview(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        """A mesh without a shader (the dataset's visual hull) to show until the first snapshot."""
        self.preview = (vertices, faces)
        if self.snapshot is None:
            self._mesh_dirty = True
            self._token += 1
            self.message.setText("")
            self.update()

    def frame_box(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """The object's box (normalised cube), which Reset view frames; framed now unless the view was moved."""
        home = self.orbit.at_home
        self.orbit.frame(lo, hi)
        if home:
            self._camera_changed()

    def set_snapshot(self, snapshot) -> None:
        """Show a new mesh and shader; uploaded at the next paint, in this widget's context."""
        self.snapshot = snapshot
        self._mesh_dirty = True
        self._token += 1  # shade again; the last colours stay on screen until then
        if self.live_rate > 0:  # more are coming: cheap frames until none came for an interval
            self._mesh_changing = True
            self._mesh_still.start(REFINE_MS + round(1000 / self.live_rate))
        self.message.setText("")
        self.update()

    def set_live(self, rate: float) -> None:
        """A run streams `rate` snapshots a second (0: none, e.g. it ended): when the mesh counts as still."""
        self.live_rate = max(0.0, float(rate))
        if self.live_rate == 0 and self._mesh_changing:
            self._mesh_still.stop()
            self._mesh_settled()

    def _mesh_settled(self) -> None:
        """No snapshot for a live-view interval (paused, stopped, or a slow step): one full-scale frame."""
        self._mesh_changing = False
        self._token += 1
        self.update()

    def clear(self) -> None:
        self.snapshot = None
        self.preview = None
        self._ready = None
        self._mesh_dirty = True
        self.update()

    # ---- what to draw: read from and written to the shared ViewState -------------------------
    @property
    def mode(self) -> str:
        return self.view_state.mode

    @property
    def wireframe(self) -> bool:
        return self.view_state.wireframe

    @property
    def show_frusta(self) -> bool:
        return self.view_state.frusta

    @property
    def overlay_opacity(self) -> float:
        return self.view_state.opacity

    def set_mode(self, mode: str) -> None:
        self.view_state.set_mode(mode)

    def set_wireframe(self, on: bool) -> None:
        self.view_state.set_wireframe(on)

    def set_frusta_visible(self, on: bool) -> None:
        self.view_state.set_frusta(on)

    def set_overlay_opacity(self, opacity: float) -> None:
        self.view_state.set_opacity(opacity)

    def _on_mode_changed(self, _mode: str) -> None:
        self._token += 1
        self.update()

    def _on_frusta_changed(self, _on: bool) -> None:
        self._frusta_dirty = True
        self.update()

    def _on_opacity_changed(self, _opacity: float) -> None:
        self._overlay_dirty = True
        self.update()

    def snap_to_view(self, index: int | None) -> None:
        """Look through dataset view `index` (None: leave the snap) and overlay its photo."""
        if index is not None and 0 <= index < len(self.view_cameras):
            self.orbit.snap(self.view_cameras[index])
            self.snapped_view = index
            self.view_snapped.emit(index)
        else:
            self.snapped_view = None
        self._overlay_dirty = self._frusta_dirty = True
        self._camera_changed()

    def reset_camera(self) -> None:
        self.orbit.reset()
        self._leave_snap()
        self._camera_changed()

    @property
    def settled(self) -> bool:
        """The frame on screen is final: no shading in flight and, for CPU neural, colours of this view."""
        if self.pipe is None or self._moving or self._mesh_changing or self._inflight or self._mesh_dirty or self._overlay_dirty:
            return False
        if self.mode in NEURAL_MODES and self._weights is not None and self.pipe.path == "cpu":
            return self._ready is not None and self._ready.token == self._token
        return True

    def current_camera(self) -> Camera:
        return self.orbit.camera(*self._pixel_size())

    # ---- painting -----------------------------------------------------------------------------
    def _pixel_size(self) -> tuple[int, int]:
        ratio = self.devicePixelRatioF()
        return max(1, round(self.width() * ratio)), max(1, round(self.height() * ratio))

    def _upload(self) -> None:
        pipe = self.pipe
        if self._mesh_dirty:
            self._mesh_dirty = False
            if self.snapshot is None:
                vertices, faces = self.preview or (np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64))
                pipe.set_mesh(vertices, faces)
                self._weights = None
            else:
                pipe.set_mesh(self.snapshot.vertices, self.snapshot.faces)
                self._weights = self.snapshot.shader().mlp_weights()  # NDS's shader or DVR's texture field
            pipe.set_shader(self._weights)
        if self._extras_dirty:
            self._extras_dirty = False
            pipe.set_shading_inputs(self.shading)
        if self._frusta_dirty:
            self._frusta_dirty = False
            pipe.set_frusta(self.view_cameras if self.show_frusta and self.view_cameras else None, self.snapped_view)
        if self._overlay_dirty:
            self._overlay_dirty = False
            image = None
            if self.snapped_view is not None and self.overlay_opacity > 0:
                image = _letterboxed_photo(self.view_images[self.snapped_view], *self._pixel_size())
            pipe.set_overlay(image, self.overlay_opacity)

    def paintGL(self) -> None:
        if self.pipe is None:
            return
        start = time.perf_counter()
        target = self.ctx.detect_framebuffer(self.defaultFramebufferObject())
        try:
            self._upload()
            camera = self.current_camera()
            size = (camera.width, camera.height)
            neural = self.mode in NEURAL_MODES and self._weights is not None and self._has_mode_inputs()
            if neural and self.pipe.path == "cpu":
                self.last_stats = self._paint_cpu_neural(camera, size, target)
            else:
                scale = MOVING_SCALE if (self._moving and neural) else 1.0
                self.last_stats = self.pipe.render(camera, size=size, target=target, mode=self.mode,
                                                   wireframe=self.wireframe, scale=scale)
        except Exception as exc:  # never let a GL problem take the window down; say it once
            if self.error is None:
                log.exception("viewport frame failed")
                self.error = f"3D view failed: {exc.__class__.__name__}: {exc}"
                self.message.setText(self.error)
            return
        self.frames += 1
        self._tick(time.perf_counter() - start)

    def _paint_cpu_neural(self, camera: Camera, size: tuple[int, int], target):
        """CPU path: present finished colours; otherwise start a shading job and show the last ones.

        The last finished frame (maybe from a slightly older camera or mesh) is shown while the
        next is shaded, so a drag never flickers to grey; with none yet, the grey "smooth" mode.
        """
        ready = self._ready
        fresh = ready is not None and ready.token == self._token
        if not fresh and not self._inflight:
            from render.viewer import shade_cpu

            scale = MOVING_SCALE if (self._moving or self._mesh_changing) else 1.0
            frame = self.pipe.capture_gbuffer(camera, size, scale)
            self._inflight = True
            self.shade_jobs += 1
            shade = partial(shade_cpu, mode=self.mode, inputs=self.shading)
            self._pool.start(_ShadeJob(self._token, shade, self._weights, frame, self._shade_signals))
        if ready is not None and ready.frame.size == size:
            return self.pipe.present(ready.frame, ready.colors, target, wireframe=self.wireframe)
        return self.pipe.render(camera, size=size, target=target, mode="smooth", wireframe=self.wireframe)

    def _has_mode_inputs(self) -> bool:
        """The current neural mode has what it needs (else the pipeline draws "smooth" instead)."""
        return self.shading.missing(self.mode) is None

    def _on_shaded(self, result: _ShadeResult) -> None:
        self._inflight = False
        self.shade_ms = 1000 * result.seconds
        if self.pipe is None:
            return
        self._ready = result
        self.update()  # present it, or start a job for the view that changed meanwhile

    def _on_shade_failed(self, message: str) -> None:
        self._inflight = False
        self.error = f"neural shading failed ({message}); showing normals"
        self.view_state.set_mode("normals")
        self.update()

    def _tick(self, seconds: float) -> None:
        """The overlay line: frame rate (only while frames keep coming), frame time, path, mode."""
        now = time.perf_counter()
        self._frame_times = [t for t in self._frame_times if now - t < 1.0] + [now]
        rate = None  # a lone frame after a rest has no rate; "0.0 fps" would read as a hung view
        if len(self._frame_times) > 1:
            rate = (len(self._frame_times) - 1) / max(now - self._frame_times[0], 1e-3)
        path = self.pipe.path if self.pipe is not None else "—"
        if path != self._shown_path:  # also when the pipeline dropped a failing path by itself
            self._shown_path = path
            self.paths_changed.emit()
        shading = self.mode in NEURAL_MODES and self._weights is not None and self._has_mode_inputs()
        if self.pipe is not None and not shading:
            path = f"{path} (idle: raster mode)"
        fps = f"{rate:4.1f} fps  " if rate is not None else ""
        self.fps_label.setText(f"{fps}{1000 * seconds:5.1f} ms  {path}  {self.mode}")
        hint = self.fps_label.sizeHint()  # grow only: a shrinking label uncovers the view, which paints a frame
        self.fps_label.resize(max(hint.width(), self.fps_label.width()), hint.height())
        if rate is not None:
            self.fps_changed.emit(rate)

    def resizeGL(self, w: int, h: int) -> None:
        self.message.setGeometry(0, 0, self.width(), self.height())
        self._overlay_dirty = True  # the letterboxed photo depends on the aspect
        self._camera_changed()

    # ---- interaction --------------------------------------------------------------------------
    def _camera_changed(self) -> None:
        """A new view: old colours are stale; render coarse now, refine when the camera rests."""
        self._token += 1
        self._moving = True
        self._refine.start()
        self.camera_moved.emit()
        self.update()

    def _stop_moving(self) -> None:
        self._moving = False
        self._token += 1
        self.update()

    def _leave_snap(self) -> None:
        if self.snapped_view is not None:
            self.snapped_view = None
            self._overlay_dirty = self._frusta_dirty = True

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.setFocus()
        picking = self.pick_mode or bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if event.button() == Qt.MouseButton.LeftButton and picking:
            self._press_pick = True  # no orbit from this press; pick on release
            self._drag_pos = None
            return
        self._drag_pos = event.position()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._drag_pos = None
        if self._press_pick and event.button() == Qt.MouseButton.LeftButton:
            self._press_pick = False
            point = self.surface_point(event.position().x(), event.position().y())
            if point is not None:
                self.surface_picked.emit(point)
            else:
                self.pick_missed.emit(self._why_no_point())

    def _why_no_point(self) -> str:
        """Why a click found no surface point, in words for the status bar."""
        if self.pipe is None:
            return self.error or "The 3D view is not ready yet."
        if self.snapshot is None and self.preview is None:
            return "Nothing to pick yet: open a dataset and press Start."
        return "No surface under the cursor: click on the mesh."

    def surface_point(self, x: float, y: float) -> np.ndarray | None:
        """Normalised surface point under widget position (x, y) in the last frame, or None (background)."""
        if self.pipe is None:
            return None
        ratio = self.devicePixelRatioF()
        self.makeCurrent()
        try:
            return self.pipe.read_gbuffer_at(x * ratio, y * ratio)
        finally:
            self.doneCurrent()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag_pos is None:
            return
        delta = event.position() - self._drag_pos
        self._drag_pos = event.position()
        ratio = self.devicePixelRatioF()
        buttons = event.buttons()
        pan = buttons & (Qt.MouseButton.RightButton | Qt.MouseButton.MiddleButton) or (
            buttons & Qt.MouseButton.LeftButton and event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        )
        if pan:
            self.orbit.pan(delta.x() * ratio, delta.y() * ratio, self._pixel_size()[1])
        elif buttons & Qt.MouseButton.LeftButton:
            self.orbit.orbit(delta.x(), delta.y())
        else:
            return
        self._leave_snap()
        self._camera_changed()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        """Orbit around the surface point under the cursor (picked from the last frame's G-buffer)."""
        point = self.surface_point(event.position().x(), event.position().y())
        if point is not None:
            self.orbit.focus(point)
            self._leave_snap()
            self._camera_changed()

    def wheelEvent(self, event: QWheelEvent) -> None:
        self.orbit.zoom(event.angleDelta().y() / 120.0)
        self._leave_snap()
        self._camera_changed()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in MODE_KEYS:
            self.view_state.set_mode(MODE_KEYS[key])
        elif key == Qt.Key.Key_R:
            self.reset_camera()
        elif key == Qt.Key.Key_W:
            self.view_state.set_wireframe(not self.wireframe)
        elif key == Qt.Key.Key_C:
            self.view_state.set_frusta(not self.show_frusta)
        elif key in (Qt.Key.Key_BracketLeft, Qt.Key.Key_BracketRight) and self.view_cameras:
            step = 1 if key == Qt.Key.Key_BracketRight else -1
            current = self.snapped_view if self.snapped_view is not None else -step
            self.snap_to_view((current + step) % len(self.view_cameras))
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down):
            dx = {Qt.Key.Key_Left: -1, Qt.Key.Key_Right: 1}.get(key, 0) * ARROW_PIXELS
            dy = {Qt.Key.Key_Up: -1, Qt.Key.Key_Down: 1}.get(key, 0) * ARROW_PIXELS
            self.orbit.orbit(dx, dy)
            self._leave_snap()
            self._camera_changed()
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal, Qt.Key.Key_Minus):
            self.orbit.zoom(1 if key != Qt.Key.Key_Minus else -1)
            self._leave_snap()
            self._camera_changed()
        else:
            super().keyPressEvent(event)


def _letterboxed_photo(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The photo padded with the viewer's background to the widget's aspect, centred like `letterbox`.

    The pipeline stretches the overlay over the whole view; padding first keeps it aligned with
    the snapped camera, which `app.orbit.letterbox` fits into the widget the same way.
    """
    from render.viewer.pipeline import BACKGROUND

    h, w = image.shape[:2]
    if width * h >= height * w:  # widget wider than the photo: pad left and right
        out_w, out_h = max(w, round(h * width / height)), h
    else:
        out_w, out_h = w, max(h, round(w * height / width))
    out = np.empty((out_h, out_w, 3), np.float32)
    out[:] = BACKGROUND
    x0, y0 = (out_w - w) // 2, (out_h - h) // 2
    out[y0 : y0 + h, x0 : x0 + w] = image[..., :3]
    return out
