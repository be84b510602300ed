"""ViewerPipeline: real-time mesh display with neural deferred shading on a caller-owned moderngl context.

Per frame (`render`):

1. G-buffer pass (GLSL 3.30, depth-tested, MRT) at the viewport size × `scale`: normalised position
   with coverage in w (RGBA32F), unit normal (RGBA32F) and, for the raster modes ("normals",
   "smooth", "flat"), the final colour (RGBA8, premultiplied by coverage).
2. Neural modes ("neural", "features", "materials"): one shading path fills the colour texture:
   "interop" (CUDA maps the textures; torch on the GPU, see interop.py), "glsl" (the MLP as a
   generated compute shader, see glsl_mlp.py) or "cpu" (read-back, torch on the CPU, upload; see
   cpu.py for the split that lets a GUI shade on a worker thread).
3. Overlays into the colour texture, depth-tested against the G-buffer: wireframe edges, camera frusta.
4. Display: a full-screen triangle draws the colour texture over a dark grey background into the
   caller's framebuffer, flipping rows (image row 0 is the widget's top row, GL's row 0 its bottom)
   and upscaling when `scale` < 1; the optional photo overlay is blended in here.

The pipeline never creates or makes current a GL context: every method that touches GL must be
called with `ctx` current on the calling thread (Qt: inside initializeGL/paintGL/resizeGL, or
between makeCurrent/doneCurrent). `release()` frees every GL and CUDA resource it made.

This module holds the GL state and the passes; `geometry.py` the pure numpy geometry,
`targets.py` the render targets per size, `paths.py` the choice of shading path and its fallback.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from render.camera import Camera
from render.viewer.cpu import GBufferFrame, shade_cpu
from render.viewer.geometry import box_corners, enclosing_clip, frustum_lines, matrix_bytes, unique_edges, vertex_normals
from render.viewer.inputs import NO_INPUTS, ShadingInputs
from render.viewer.mlp import NEURAL_MODES, MLPWeights
from render.viewer.paths import PATHS, ShadingPaths
from render.viewer.targets import RenderTargets, TargetCache
from render.viewer.programs import (
    DISPLAY_FRAGMENT,
    DISPLAY_VERTEX,
    GBUFFER_FRAGMENT,
    GBUFFER_VERTEX,
    LINES_FRAGMENT,
    LINES_VERTEX,
    NEURAL_MODE_CODE,
    RASTER_MODES,
)

log = logging.getLogger(__name__)

__all__ = ["BACKGROUND", "MODES", "PATHS", "FrameStats", "ViewerPipeline"]

MODES = ("neural", "normals", "smooth", "flat", "features", "materials")
BACKGROUND = (0.16, 0.16, 0.17)
WIREFRAME_COLOR = (0.05, 0.05, 0.05, 1.0)
FRUSTUM_COLOR = (0.95, 0.75, 0.2, 1.0)
FRUSTUM_HIGHLIGHT_COLOR = (0.2, 0.85, 1.0, 1.0)
LINE_DEPTH_BIAS = 2e-4  # NDC depth the lines are pulled towards the eye (plus polygon offset on faces)


@dataclass(frozen=True)
class FrameStats:
    """What one frame cost (milliseconds) and which shading path produced it.

    Attributes:
        path: "interop", "glsl" or "cpu" when the MLP shaded the frame; "raster" when the mode
            needed no MLP (or lacked its inputs and fell back to "smooth").
        gbuffer_ms, shading_ms, display_ms: wall time of each stage. GL runs asynchronously, so
            these are submission times unless the pipeline was made with sync_stats=True.
        covered_pixels: pixels the shader ran on; -1 when not measured (GPU paths without sync_stats).
    """

    path: str
    gbuffer_ms: float
    shading_ms: float
    display_ms: float
    covered_pixels: int

    @property
    def total_ms(self) -> float:
        return self.gbuffer_ms + self.shading_ms + self.display_ms


class ViewerPipeline:
    """Draws a mesh with one of six modes into a caller's framebuffer; see the module docstring.

    Args:
        ctx: an existing moderngl.Context (Qt's, or a standalone one), current on this thread.
        sync_stats: wait for the GPU after each stage so FrameStats times are exact and the GLSL
            path counts covered pixels (benchmarks, tests); a GUI leaves it off.
    """

    def __init__(self, ctx: Any, sync_stats: bool = False) -> None:
        import moderngl

        self._mgl = moderngl
        self.ctx = ctx
        self.sync_stats = sync_stats
        self._released = False
        self._gbuffer_prog = ctx.program(vertex_shader=GBUFFER_VERTEX, fragment_shader=GBUFFER_FRAGMENT)
        self._lines_prog = ctx.program(vertex_shader=LINES_VERTEX, fragment_shader=LINES_FRAGMENT)
        self._display_prog = ctx.program(vertex_shader=DISPLAY_VERTEX, fragment_shader=DISPLAY_FRAGMENT)
        self._display_vao = ctx.vertex_array(self._display_prog, [])
        self._blank = ctx.texture((1, 1), 4, bytes(4))  # bound as the overlay when there is none
        # Mesh buffers and vertex arrays (made by set_mesh).
        self._pos_buf: Any = None
        self._normal_buf: Any = None
        self._index_buf: Any = None
        self._edge_buf: Any = None
        self._mesh_vao: Any = None
        self._edge_vao: Any = None
        self._faces: np.ndarray | None = None
        self._face_count = 0
        self._edge_count = -1  # -1: edges not computed for the current faces
        self._bbox = np.zeros((8, 3))
        # Camera frusta and the photo overlay.
        self._frusta_buf: Any = None
        self._frusta_vao: Any = None
        self._frusta_count = 0
        self._frusta_highlight: int | None = None
        self._frusta_points = np.zeros((0, 3))
        self._overlay: Any = None
        self._overlay_opacity = 0.0
        # Render targets per G-buffer size (the full one and the reduced one of a moving camera).
        self._targets = TargetCache(ctx, self._forget)
        self._serial = 0
        # The targets of the frame last displayed and the size it was displayed at: what picking
        # and read-back see. A G-buffer pass alone (a CPU-path capture) does not change it.
        self._pick: tuple[RenderTargets, tuple[int, int]] | None = None
        # Shading state and paths.
        self._weights: MLPWeights | None = None
        self._inputs = NO_INPUTS
        self._paths = ShadingPaths(ctx)
        self._fallback_logged: set[str] = set()
        log.info("viewer pipeline on %s: paths %s, using %s", ctx.info["GL_RENDERER"], self._paths.available(), self.path)

    # -- paths --------------------------------------------------------------------------------

    @property
    def interop_shader(self) -> Any:
        """The interop path's `InteropShader` once it has shaded a frame, else None (diagnostics, tests)."""
        return self._paths.interop

    def available_paths(self) -> list[str]:
        """Shading paths usable with this context, fastest first (see `render.viewer.paths`)."""
        return self._paths.available()

    def unavailable_reasons(self) -> dict[str, str]:
        """Why each missing path is missing (for a tooltip or the log)."""
        return self._paths.unavailable_reasons()

    @property
    def path(self) -> str:
        return self._paths.current

    def set_path(self, name: str) -> None:
        """Switch the shading path, releasing the previous one's GL/CUDA resources."""
        self._paths.select(name)

    # -- scene state --------------------------------------------------------------------------

    def set_mesh(self, vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray | None = None) -> None:
        """Upload a mesh in the normalised cube: (V, 3) float vertices, (F, 3) int faces (CCW outward).

        Cheap enough for live updates a few times a second: buffers are refilled in place, the
        index buffer only when the faces changed; vertex normals are area-weighted unless given.
        """
        vertices = np.ascontiguousarray(vertices, dtype=np.float32)
        faces = np.ascontiguousarray(faces, dtype=np.int32)
        if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"expected vertices (V, 3) and faces (F, 3), got {vertices.shape} and {faces.shape}")
        if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
            raise ValueError("face indices out of range")
        if normals is None:
            normals = vertex_normals(vertices, faces) if len(faces) else np.zeros_like(vertices)
        normals = np.ascontiguousarray(normals, dtype=np.float32)
        ctx = self.ctx
        self._pos_buf = _fill(ctx, self._pos_buf, vertices)
        self._normal_buf = _fill(ctx, self._normal_buf, normals)
        if self._faces is None or self._faces.shape != faces.shape or not np.array_equal(self._faces, faces):
            self._index_buf = _fill(ctx, self._index_buf, faces)
            self._faces = faces.copy()
            self._edge_count = -1
        self._face_count = len(faces)
        if self._mesh_vao is None:
            self._mesh_vao = ctx.vertex_array(
                self._gbuffer_prog,
                [(self._pos_buf, "3f", "in_position"), (self._normal_buf, "3f", "in_normal")],
                index_buffer=self._index_buf,
                index_element_size=4,
            )
        if len(vertices):
            self._bbox = box_corners(vertices)

    def set_shader(self, weights: MLPWeights | None) -> None:
        """The neural shader for the neural modes (None: they fall back to "smooth")."""
        self._weights = weights
        self._paths.invalidate()

    def set_shading_inputs(self, inputs: ShadingInputs) -> None:
        """Projection, edits, material centroids and highlight of the neural modes, as one value."""
        self._inputs = inputs
        self._paths.invalidate()

    def set_overlay(self, image: np.ndarray | None, opacity: float = 0.5) -> None:
        """A photo (H, W, 3) float in [0, 1] blended over the whole view (stretched to it), or None."""
        if self._overlay is not None:
            self._overlay.release()
            self._overlay = None
        self._overlay_opacity = 0.0
        if image is not None and opacity > 0:
            rgb = np.clip(np.asarray(image, dtype=np.float32)[..., :3], 0.0, 1.0)
            rgba = np.concatenate([rgb, np.ones_like(rgb[..., :1])], axis=-1)
            data = np.ascontiguousarray((rgba * 255 + 0.5).astype(np.uint8))
            self._overlay = self.ctx.texture((data.shape[1], data.shape[0]), 4, data.tobytes())
            self._overlay.filter = (self._mgl.LINEAR, self._mgl.LINEAR)
            self._overlay_opacity = float(min(opacity, 1.0))

    def set_frusta(self, cameras: list[Camera] | None, highlight: int | None = None, depth: float | None = None) -> None:
        """Camera frusta drawn as lines (normalised space); `highlight` is drawn in another colour.

        `depth` is the frustum length; by default a tenth of the mean camera distance to the origin.
        """
        cameras = list(cameras or [])
        if highlight is not None and not 0 <= highlight < len(cameras):
            highlight = None
        if highlight is not None:  # the highlighted one goes last so it is one draw range
            cameras = cameras[:highlight] + cameras[highlight + 1 :] + [cameras[highlight]]
        if depth is None:
            depth = 0.1 * float(np.mean([np.linalg.norm(c.center) for c in cameras])) if cameras else 0.1
        lines = frustum_lines(cameras, max(depth, 1e-3))
        self._frusta_count = len(lines)
        self._frusta_highlight = highlight
        self._frusta_points = lines.astype(np.float64)
        if not len(lines):
            return
        self._frusta_buf = _fill(self.ctx, self._frusta_buf, lines)
        if self._frusta_vao is None:
            self._frusta_vao = self.ctx.vertex_array(self._lines_prog, [(self._frusta_buf, "3f", "in_position")])

    # -- frames -------------------------------------------------------------------------------

    def render(
        self,
        camera: Camera,
        size: tuple[int, int],
        target: Any,
        mode: str = "neural",
        wireframe: bool = False,
        scale: float = 1.0,
    ) -> FrameStats:
        """Draw one frame into `target` (a moderngl Framebuffer) of `size` (w, h) pixels.

        `camera` is in normalised space; its image fills the target (make its width/height match
        `size` to avoid stretching). `scale` < 1 renders the G-buffer and shading at that fraction
        of the size and upscales. Neural modes without what they need (no shader, no projection
        for "features", no centroids for "materials") draw "smooth" instead. With the "cpu" path
        this is `capture_gbuffer` → `shade_cpu` → `present` in sequence on this thread.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self._check_alive()
        mode = self._effective_mode(mode)
        if mode in NEURAL_MODES and self.path == "cpu":
            frame = self.capture_gbuffer(camera, size, scale)
            start = time.perf_counter()
            colors = shade_cpu(self._weights, frame, mode, self._inputs)  # type: ignore[arg-type]
            shading_ms = 1000 * (time.perf_counter() - start)
            stats = self.present(frame, colors, target, wireframe)
            return dataclasses.replace(stats, shading_ms=stats.shading_ms + shading_ms)

        targets, render_size = self._targets.get(size, scale)
        start = time.perf_counter()
        self._gbuffer_pass(targets, camera, RASTER_MODES.get(mode, NEURAL_MODE_CODE))
        self._sync()
        gbuffer_ms = 1000 * (time.perf_counter() - start)
        start = time.perf_counter()
        covered, path = -1, "raster"
        if mode in NEURAL_MODES:
            path = self.path
            try:
                assert self._weights is not None
                covered = self._paths.shade_gpu(targets, render_size, camera, mode, self._weights, self._inputs, self.sync_stats)
            except Exception as exc:  # a driver/compile failure must not kill the GUI: fall back
                self._paths.drop(path, exc)
                return self.render(camera, size, target, mode, wireframe, scale)
        self._sync()
        shading_ms = 1000 * (time.perf_counter() - start)
        start = time.perf_counter()
        self._finish(targets, camera, size, target, wireframe)
        self._sync()
        display_ms = 1000 * (time.perf_counter() - start)
        return FrameStats(path, gbuffer_ms, shading_ms, display_ms, covered)

    def capture_gbuffer(self, camera: Camera, size: tuple[int, int], scale: float = 1.0) -> GBufferFrame:
        """CPU path, step 1 (GL, UI thread): G-buffer pass and read-back of the covered pixels.

        Hand the frame to `shade_cpu` (any thread), then to `present` (GL thread).
        """
        self._check_alive()
        targets, render_size = self._targets.get(size, scale)
        start = time.perf_counter()
        self._gbuffer_pass(targets, camera, NEURAL_MODE_CODE)
        w, h = render_size
        position = np.empty((h, w, 4), np.float32)
        normal = np.empty((h, w, 4), np.float32)
        targets.gbuffer_fbo.read_into(position, components=4, attachment=0, dtype="f4")
        targets.gbuffer_fbo.read_into(normal, components=4, attachment=1, dtype="f4")
        pixel = np.flatnonzero(position[..., 3].reshape(-1) > 0)
        x = torch.from_numpy(position.reshape(-1, 4)[pixel, :3])
        n = torch.from_numpy(normal.reshape(-1, 4)[pixel, :3])
        eye = torch.from_numpy(camera.center.astype(np.float32))
        view_dir = torch.nn.functional.normalize(eye - x, dim=-1)
        gbuffer_ms = 1000 * (time.perf_counter() - start)
        return GBufferFrame(
            camera, (int(size[0]), int(size[1])), render_size, torch.from_numpy(pixel), x, n, view_dir, targets.serial, gbuffer_ms
        )

    def present(self, frame: GBufferFrame, colors: torch.Tensor | np.ndarray, target: Any, wireframe: bool = False) -> FrameStats:
        """CPU path, step 3 (GL, UI thread): upload `colors` (N, 3) in [0, 1] of `frame`'s pixels and draw.

        Safe to call again with the same frame (e.g. on an expose event). When another frame was
        rendered in between, the G-buffer pass is redone for `frame`'s camera so wireframe and
        picking match what is shown.
        """
        self._check_alive()
        targets, render_size = self._targets.get(frame.size, frame.render_size[0] / max(frame.size[0], 1), frame.render_size)
        start = time.perf_counter()
        if targets.serial != frame.serial:
            self._gbuffer_pass(targets, frame.camera, NEURAL_MODE_CODE)
        colors_t = torch.as_tensor(colors, dtype=torch.float32).reshape(-1, 3)
        if colors_t.shape[0] != frame.covered_pixels:
            raise ValueError(f"expected {frame.covered_pixels} colours, got {colors_t.shape[0]}")
        w, h = render_size
        rgba = torch.zeros((h * w, 4), dtype=torch.uint8)
        rgba[frame.pixel, :3] = (colors_t.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        rgba[frame.pixel, 3] = 255
        targets.color.write(rgba.numpy().tobytes())
        upload_ms = 1000 * (time.perf_counter() - start)
        start = time.perf_counter()
        self._finish(targets, frame.camera, frame.size, target, wireframe)
        self._sync()
        display_ms = 1000 * (time.perf_counter() - start)
        return FrameStats("cpu", frame.gbuffer_ms, upload_ms, display_ms, frame.covered_pixels)

    def read_gbuffer_at(self, x: float, y: float) -> np.ndarray | None:
        """Normalised surface point (3,) under window pixel (x, y) (top-left origin) of the last frame, or None.

        (x, y) are pixels of the displayed frame; a frame rendered at a reduced `scale` is read at
        the G-buffer texel that pixel was upscaled from.
        """
        self._check_alive()
        if self._pick is None:
            return None
        targets, size = self._pick
        if not self._targets.holds(targets):
            return None
        gx = int(math.floor(x * targets.size[0] / size[0]))
        gy = int(math.floor(y * targets.size[1] / size[1]))
        if not (0 <= gx < targets.size[0] and 0 <= gy < targets.size[1]):
            return None
        texel = np.frombuffer(
            targets.gbuffer_fbo.read(viewport=(gx, gy, 1, 1), components=4, attachment=0, dtype="f4"), np.float32
        )
        return texel[:3].astype(np.float64) if texel[3] > 0 else None

    @property
    def shown_resolution(self) -> tuple[int, int] | None:
        """(w, h) the frame last displayed was rendered at (below its display size when `scale` < 1), or None."""
        return None if self._pick is None else self._pick[0].size

    def read_color(self) -> np.ndarray | None:
        """(h, w, 4) uint8 colour texture of the last frame (G-buffer size, premultiplied, row 0 at the top)."""
        if self._pick is None:
            return None
        targets = self._pick[0]
        w, h = targets.size
        return np.frombuffer(targets.color.read(), np.uint8).reshape(h, w, 4).copy()

    def read_gbuffer(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(position, normal), each (h, w, 4) float32, of the last frame's G-buffer (row 0 at the top)."""
        if self._pick is None:
            return None
        targets = self._pick[0]
        w, h = targets.size
        position = np.empty((h, w, 4), np.float32)
        normal = np.empty((h, w, 4), np.float32)
        targets.gbuffer_fbo.read_into(position, components=4, attachment=0, dtype="f4")
        targets.gbuffer_fbo.read_into(normal, components=4, attachment=1, dtype="f4")
        return position, normal

    def release(self) -> None:
        """Free every GL and CUDA resource (ctx current); the pipeline can't be used afterwards."""
        if self._released:
            return
        self._paths.release()
        self._targets.release()
        self._pick = None
        for obj in (
            self._mesh_vao, self._edge_vao, self._frusta_vao, self._display_vao,
            self._pos_buf, self._normal_buf, self._index_buf, self._edge_buf, self._frusta_buf,
            self._overlay, self._blank, self._gbuffer_prog, self._lines_prog, self._display_prog,
        ):  # fmt: skip
            if obj is not None:
                obj.release()
        self._mesh_vao = self._edge_vao = self._frusta_vao = self._overlay = None
        self._pos_buf = self._normal_buf = self._index_buf = self._edge_buf = self._frusta_buf = None
        self._released = True

    # -- internals ----------------------------------------------------------------------------

    def _check_alive(self) -> None:
        if self._released:
            raise RuntimeError("ViewerPipeline was released")

    def _sync(self) -> None:
        if self.sync_stats:
            self.ctx.finish()
            if self.path == "interop" and torch.cuda.is_available():
                torch.cuda.synchronize()

    def _effective_mode(self, mode: str) -> str:
        missing = None
        if mode in NEURAL_MODES:
            missing = "no shader" if self._weights is None else self._inputs.missing(mode)
        if missing is None:
            return mode
        if mode not in self._fallback_logged:
            log.info("viewer mode %r: %s set, drawing 'smooth'", mode, missing)
            self._fallback_logged.add(mode)
        return "smooth"

    def _forget(self, targets: RenderTargets) -> None:
        """`targets` are dropped for another size: nothing may keep using them."""
        self._paths.forget(targets)
        if self._pick is not None and self._pick[0] is targets:
            self._pick = None

    def _gbuffer_pass(self, targets: RenderTargets, camera: Camera, mode_code: int) -> None:
        ctx, mgl = self.ctx, self._mgl
        self._serial += 1
        targets.serial = self._serial
        fbo = targets.gbuffer_fbo
        fbo.use()
        ctx.viewport = (0, 0, *targets.size)
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        if self._mesh_vao is not None and self._face_count:
            ctx.enable_only(mgl.DEPTH_TEST)
            ctx.depth_func = "<"
            ctx.polygon_offset = (1.0, 1.0)  # faces slightly back, so wireframe edges win
            prog = self._gbuffer_prog
            prog["u_clip"].write(matrix_bytes(self._clip(camera)))
            prog["u_mode"].value = mode_code
            prog["u_eye"].value = tuple(float(v) for v in camera.center)
            self._mesh_vao.render(mgl.TRIANGLES, vertices=3 * self._face_count)
            ctx.polygon_offset = (0.0, 0.0)

    def _clip(self, camera: Camera) -> np.ndarray:
        return enclosing_clip(camera, self._bbox, self._frusta_points)

    def _finish(self, targets: RenderTargets, camera: Camera, size: tuple[int, int], target: Any, wireframe: bool) -> None:
        """Overlays into the colour texture, then the display pass into `target`."""
        ctx, mgl = self.ctx, self._mgl
        self._pick = (targets, (int(size[0]), int(size[1])))
        if (wireframe and self._face_count) or self._frusta_count:
            fbo = targets.color_fbo
            fbo.use()
            ctx.viewport = (0, 0, *targets.size)
            ctx.enable_only(mgl.DEPTH_TEST)
            ctx.depth_func = "<="
            fbo.depth_mask = False
            prog = self._lines_prog
            prog["u_clip"].write(matrix_bytes(self._clip(camera)))
            prog["u_bias"].value = LINE_DEPTH_BIAS
            if wireframe and self._face_count:
                vao = self._edges()
                prog["u_color"].value = WIREFRAME_COLOR
                vao.render(mgl.LINES, vertices=2 * self._edge_count)
            if self._frusta_count and self._frusta_vao is not None:
                plain = self._frusta_count - (16 if self._frusta_highlight is not None else 0)
                prog["u_color"].value = FRUSTUM_COLOR
                if plain:
                    self._frusta_vao.render(mgl.LINES, vertices=plain)
                if self._frusta_highlight is not None:
                    prog["u_color"].value = FRUSTUM_HIGHLIGHT_COLOR
                    self._frusta_vao.render(mgl.LINES, vertices=16, first=plain)
            fbo.depth_mask = True
        target.use()
        ctx.viewport = (0, 0, int(size[0]), int(size[1]))
        ctx.enable_only(mgl.NOTHING)
        upscale = targets.size != (int(size[0]), int(size[1]))
        targets.color.filter = (mgl.LINEAR, mgl.LINEAR) if upscale else (mgl.NEAREST, mgl.NEAREST)
        targets.color.use(location=0)
        (self._overlay or self._blank).use(location=1)
        prog = self._display_prog
        prog["u_color"].value = 0
        prog["u_overlay"].value = 1
        prog["u_overlay_opacity"].value = self._overlay_opacity if self._overlay is not None else 0.0
        prog["u_size"].value = (float(size[0]), float(size[1]))
        prog["u_background"].value = BACKGROUND
        self._display_vao.render(mgl.TRIANGLES, vertices=3)

    def _edges(self) -> Any:
        """The wireframe's vertex array, rebuilt only after the faces changed."""
        if self._edge_count < 0:
            assert self._faces is not None
            edges = unique_edges(self._faces)
            self._edge_buf = _fill(self.ctx, self._edge_buf, edges)
            self._edge_count = len(edges)
            if self._edge_vao is None:
                self._edge_vao = self.ctx.vertex_array(
                    self._lines_prog, [(self._pos_buf, "3f", "in_position")], index_buffer=self._edge_buf, index_element_size=4
                )
        return self._edge_vao


def _fill(ctx: Any, buf: Any, data: np.ndarray) -> Any:
    """`buf` holding `data`: refilled in place, orphaned to a new size, or created (never empty)."""
    raw = np.ascontiguousarray(data).tobytes() or bytes(4)
    if buf is None:
        return ctx.buffer(raw, dynamic=True)
    if buf.size != len(raw):
        buf.orphan(len(raw))
    buf.write(raw)
    return buf
