"""OpenGL rasterizer on a standalone EGL context (moderngl): the sampling step on any machine.

Pipeline (one draw per layer, no vertex buffers; on software GL a compute shader pre-culls):

* `pos_clip` (V, 4) and the faces (F·3 int32) live in shader storage buffers; the vertex shader
  fetches `positions[faces[gl_VertexID]]`, so each of the F·3 drawn vertices knows its corner and
  emits the barycentric attribute (1, 0) / (0, 1) / (0, 0). GL interpolates it perspective-correctly.
* The fragment shader writes `gl_PrimitiveID + 1` (R32I; 0 = empty), (b0, b1, 1 − b0 − b1)
  (RGBA32F) and gl_FragCoord.w = 1 / camera z (R32F). Storing the reciprocal lets one clear to
  zero empty all targets (a second clear on another framebuffer costs llvmpipe a full flush);
  depth = 1 / stored comes out as +inf where empty.
* Barycentrics stay on their face. GL snaps vertices to a sub-pixel grid, so a sliver (a face of
  almost no screen area) can cover a pixel centre that the exact face misses, with attributes
  extrapolated wildly: one seen on a real run, (-497, 559, -61), put the point 22 px from its
  pixel and 1.9 units nearer the camera, where it hid the true surface. A fragment more than
  SNAP_SLACK (1) outside [0, 1] is dropped (its neighbours cover the pixel); the rest, off by
  rounding (up to 0.25 seen on slivers, in ~0.2 % of a run's samples), are clamped and renormalised.
* Back faces are culled. Our clip space keeps image row 0 at framebuffer row 0 (NDC y = 2v/H − 1),
  which mirrors the image, so outward counter-clockwise faces seen from outside are *clockwise* in
  NDC: front_face = 'cw'.
* Layer k > 0 is depth peeling: a fragment is discarded when its 1/z is >= the 1/z stored for
  that pixel by layer k − 1 (R32F, ping-ponged; 0 where empty, so empty stays empty). The same
  triangle yields bit-identical values at the same pixel in every pass, so the exact comparison
  removes exactly the surfaces already reported.
  (The peel reference is the float32 colour target, not the depth buffer: moderngl's depth
  attachments are 24-bit, and an unquantised gl_FragCoord.z can exceed its own rounded copy.)
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import torch

from render.backends._common import check_index_range, check_raster_inputs, empty_fragments
from render.fragments import Fragments

log = logging.getLogger(__name__)

_INSTALL_HINT = (
    "Install an EGL implementation with OpenGL 4.3+: on Debian/Ubuntu "
    "`apt install libegl1 libegl-mesa0 libgl1-mesa-dri` (Mesa, software llvmpipe works), on "
    "Fedora `dnf install mesa-libEGL mesa-dri-drivers`; on NVIDIA machines the driver's "
    "libEGL_nvidia is used. moderngl needs its `glcontext` package (installed with moderngl)."
)

# Faces per draw are a multiple of this, so storage-buffer range offsets (12 bytes a face) stay
# aligned for any GL_SHADER_STORAGE_BUFFER_OFFSET_ALIGNMENT up to 4096 bytes.
_FACE_CHUNK_GRANULE = 1024

_VERTEX_SHADER = """
#version 430
layout(std430, binding = 0) readonly buffer Positions { vec4 positions[]; };
layout(std430, binding = 1) readonly buffer Faces { int faces[]; };
out Corner { vec2 bary; } corner_out;
void main() {
    int corner = gl_VertexID % 3;
    corner_out.bary = vec2(corner == 0, corner == 1);
    gl_Position = positions[faces[gl_VertexID]];
}
"""

# Optional pre-cull for software GL: llvmpipe spends about as long on a triangle it culls as on
# one it draws, and a dense mesh at a modest resolution has far more triangles than pixels. A
# compute shader (threaded and vectorised on llvmpipe) marks in one bit per face the faces that are
# front-facing (homogeneous orientation test, valid across w = 0) and whose pixel bounding box holds
# a pixel centre; only those are drawn, in every layer. The bounding box is widened by 1/128 px,
# more than GL's vertex snapping (1/256 px grid) can move an edge, so nothing GL would have drawn
# is dropped. Hardware rasterizers cull for free: off there.
_CULL_GROUP = 64  # invocations per work group; each invocation marks 32 faces (one word)
_MAX_CULL_FACES = 65535 * _CULL_GROUP * 32  # one dispatch's worth (GL guarantees 65535 groups)
_CULL_SHADER = f"#version 430\nlayout(local_size_x = {_CULL_GROUP}) in;\n" + """
layout(std430, binding = 0) readonly buffer Positions { vec4 positions[]; };
layout(std430, binding = 1) readonly buffer Faces { int faces[]; };
layout(std430, binding = 2) writeonly buffer Keep { uint keep[]; };
uniform vec2 u_size;
uniform int u_count;
uniform int u_word_offset;
bool drawn(int face) {
    vec3 a = positions[faces[3 * face]].xyw;
    vec3 b = positions[faces[3 * face + 1]].xyw;
    vec3 c = positions[faces[3 * face + 2]].xyw;
    if (dot(a, cross(b, c)) >= 0.0) {
        return false;
    }
    if (a.z > 0.0 && b.z > 0.0 && c.z > 0.0) {
        vec2 pa = (a.xy / a.z + 1.0) * 0.5 * u_size;
        vec2 pb = (b.xy / b.z + 1.0) * 0.5 * u_size;
        vec2 pc = (c.xy / c.z + 1.0) * 0.5 * u_size;
        vec2 lo = min(pa, min(pb, pc)) - 1.0 / 128.0;
        vec2 hi = max(pa, max(pb, pc)) + 1.0 / 128.0;
        if (any(lessThan(floor(hi - 0.5), ceil(lo - 0.5)))) {
            return false;
        }
    }
    return true;
}
void main() {
    int word = int(gl_GlobalInvocationID.x);
    int first = 32 * word;
    if (first >= u_count) {
        return;
    }
    uint bits = 0u;
    for (int j = 0; j < min(32, u_count - first); ++j) {
        if (drawn(first + j)) {
            bits |= 1u << uint(j);
        }
    }
    keep[u_word_offset + word] = bits;
}
"""

_FRAGMENT_SHADER = """
#version 430
const float SNAP_SLACK = 1.0;
uniform int u_peel;
uniform int u_face_offset;
layout(binding = 0) uniform sampler2D u_prev_inv_z;
in Corner { vec2 bary; } corner_in;
layout(location = 0) out int o_id;
layout(location = 1) out vec4 o_bary;
layout(location = 2) out float o_inv_z;
void main() {
    vec3 b = vec3(corner_in.bary, 1.0 - corner_in.bary.x - corner_in.bary.y);
    if (any(lessThan(b, vec3(-SNAP_SLACK))) || any(greaterThan(b, vec3(1.0 + SNAP_SLACK)))) {
        discard;
    }
    float inv_z = gl_FragCoord.w;
    if (u_peel != 0 && inv_z >= texelFetch(u_prev_inv_z, ivec2(gl_FragCoord.xy), 0).r) {
        discard;
    }
    o_id = gl_PrimitiveID + u_face_offset + 1;
    b = clamp(b, 0.0, 1.0);
    o_bary = vec4(b / (b.x + b.y + b.z), 0.0);
    o_inv_z = inv_z;
}
"""


@dataclass
class _Targets:
    """GL render targets for one resolution, kept between calls of the same size."""

    id_tex: Any
    bary_tex: Any
    inv_z_texs: tuple[Any, Any]  # ping-pong: one is written while the other is the peel reference
    depth_rb: Any
    fbos: tuple[Any, Any]
    id_staging: torch.Tensor  # (H, W) int32 CPU: the id read-back before widening to int64

    def release(self) -> None:
        for obj in (*self.fbos, self.id_tex, self.bary_tex, *self.inv_z_texs, self.depth_rb):
            obj.release()


class GLRasterizer:
    """Rasterizer context on a standalone moderngl/EGL OpenGL 4.3+ context.

    The GL context is created lazily by the first `rasterize` call and belongs to the thread that
    made that call: OpenGL contexts are current on one thread at a time, so use one GLRasterizer
    per thread (calls from another thread raise RuntimeError). Render targets are cached per
    resolution (the `max_cached_sizes` most recent ones) and the storage buffers only grow, so
    repeated calls allocate no GL memory. `release()` (or leaving a `with` block) frees it all.

    Args:
        max_cached_sizes: how many resolutions keep their render targets between calls.
        shader_cull: mark back faces and triangles that miss every pixel centre in a compute
            shader and draw only the rest; same output, faster on software GL. None: on for
            software renderers (llvmpipe, softpipe), off on GPUs.
    """

    def __init__(self, max_cached_sizes: int = 2, shader_cull: bool | None = None) -> None:
        if max_cached_sizes < 1:
            raise ValueError("max_cached_sizes must be >= 1")
        self._max_cached_sizes = max_cached_sizes
        self._shader_cull = shader_cull
        self._ctx: Any = None
        self._owner: int | None = None
        self._released = False
        self._program: Any = None
        self._cull_program: Any = None
        self._vao: Any = None
        self._pos_buf: Any = None
        self._tri_buf: Any = None
        self._keep_buf: Any = None  # one bit per face: drawn by the pre-cull
        self._drawn_buf: Any = None  # the faces the pre-cull kept
        self._faces = torch.empty((0, 3), dtype=torch.int32)  # CPU copy of the faces in _tri_buf
        self.drawn_faces = 0  # faces the last call drew in each layer (after the pre-cull)
        self._tri_source: torch.Tensor | None = None  # tensor whose faces are in _tri_buf
        self._tri_version = -1
        self._tri_max = -1  # largest index in the uploaded faces
        self._targets: OrderedDict[tuple[int, int], _Targets] = OrderedDict()
        self._max_block_bytes = 0

    # -- public API -------------------------------------------------------------------------

    def rasterize(
        self,
        pos_clip: torch.Tensor,
        tri: torch.Tensor,
        resolution: Sequence[int],
        layers: int = 1,
    ) -> Fragments:
        """Rasterize triangles into K depth-peeled layers (back faces culled; not differentiable).

        Tensors may be on any device; they are copied to the CPU for upload and the result is
        returned on `pos_clip`'s device.

        Args:
            pos_clip: (V, 4) float32 clip-space vertex positions (see `render.camera.to_clip`).
            tri: (F, 3) int64 (or int32) vertex indices; outward faces counter-clockwise.
            resolution: (H, W) output size in pixels.
            layers: K >= 1, the number of depth layers to return.

        Returns:
            Fragments with tri_id (K, H, W) int64 (-1 empty), bary (K, H, W, 3) float32 and
            depth (K, H, W) float32 camera z (+inf empty), front-most layer first.
        """
        # Face indices are range-checked when uploaded; a cached upload only needs max < V.
        height, width = check_raster_inputs(pos_clip, tri, resolution, layers, check_indices=False)
        device = pos_clip.device
        if tri.shape[0] == 0:
            self.drawn_faces = 0
            return empty_fragments(layers, height, width, device)
        self._ensure_context()
        with self._ctx:
            frags = self._rasterize_cpu(pos_clip, tri, height, width, layers)
        return frags if device.type == "cpu" else frags.to(device)

    def release(self) -> None:
        """Free all GL objects and the context; the object can't be used afterwards."""
        if self._ctx is not None:
            self._check_thread()
            with self._ctx:
                for targets in self._targets.values():
                    targets.release()
                objs = (self._vao, self._program, self._cull_program, self._pos_buf, self._tri_buf, self._keep_buf, self._drawn_buf)
                for obj in objs:
                    if obj is not None:
                        obj.release()
            self._ctx.release()
        self._targets.clear()
        self._ctx = self._vao = self._program = self._cull_program = None
        self._pos_buf = self._tri_buf = self._keep_buf = self._drawn_buf = None
        self._tri_source = None
        self._released = True

    def __enter__(self) -> GLRasterizer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    @property
    def renderer(self) -> str:
        """The GL_RENDERER string (creates the context if needed), e.g. 'llvmpipe (LLVM 15...)'."""
        self._ensure_context()
        return str(self._ctx.info["GL_RENDERER"])

    # -- internals ----------------------------------------------------------------------------

    def _check_thread(self) -> None:
        if self._owner is not None and self._owner != threading.get_ident():
            raise RuntimeError(
                "GLRasterizer is bound to the thread that first used it (OpenGL contexts are "
                "per-thread); create one GLRasterizer per thread"
            )

    def _ensure_context(self) -> None:
        if self._released:
            raise RuntimeError("GLRasterizer was released; create a new one")
        if self._ctx is not None:
            self._check_thread()
            return
        try:
            import moderngl
        except ImportError as exc:  # pragma: no cover - moderngl is a hard dependency
            raise RuntimeError(f"moderngl is not installed ({exc}). {_INSTALL_HINT}") from exc
        store = getattr(moderngl, "_store", None)
        previous_default = getattr(store, "default_context", None)
        try:
            ctx = moderngl.create_standalone_context(backend="egl", require=430)
        except Exception as exc:
            raise RuntimeError(f"could not create an OpenGL 4.3 EGL context ({exc}). {_INSTALL_HINT}") from exc
        finally:
            # moderngl makes every new context its global default; ours is private, so put the
            # application's default (e.g. the viewer's) back.
            if store is not None:
                store.default_context = previous_default
        self._ctx = ctx
        self._owner = threading.get_ident()
        self._max_block_bytes = int(ctx.info["GL_MAX_SHADER_STORAGE_BLOCK_SIZE"])
        renderer = str(ctx.info["GL_RENDERER"])
        if self._shader_cull is None:
            self._shader_cull = any(name in renderer.lower() for name in ("llvmpipe", "softpipe", "swrast"))
        with ctx:
            self._program = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
            if self._shader_cull:
                self._cull_program = ctx.compute_shader(_CULL_SHADER)
            self._vao = ctx.vertex_array(self._program, [])
        log.info(
            "GL rasterizer context: %s, OpenGL %s (thread %d, shader cull %s)",
            renderer,
            ctx.info["GL_VERSION"],
            self._owner,
            "on" if self._shader_cull else "off",
        )

    def _get_targets(self, height: int, width: int) -> _Targets:
        key = (height, width)
        targets = self._targets.get(key)
        if targets is not None:
            self._targets.move_to_end(key)
            return targets
        while len(self._targets) >= self._max_cached_sizes:
            _, oldest = self._targets.popitem(last=False)
            oldest.release()
        ctx, size = self._ctx, (width, height)
        id_tex = ctx.texture(size, 1, dtype="i4")
        bary_tex = ctx.texture(size, 4, dtype="f4")
        inv_z_texs = (ctx.texture(size, 1, dtype="f4"), ctx.texture(size, 1, dtype="f4"))
        depth_rb = ctx.depth_renderbuffer(size)
        fbos = tuple(ctx.framebuffer([id_tex, bary_tex, inv_z], depth_rb) for inv_z in inv_z_texs)
        targets = _Targets(
            id_tex=id_tex,
            bary_tex=bary_tex,
            inv_z_texs=inv_z_texs,
            depth_rb=depth_rb,
            fbos=fbos,  # type: ignore[arg-type]
            id_staging=torch.empty((height, width), dtype=torch.int32),
        )
        self._targets[key] = targets
        log.debug("GL rasterizer: render targets for %dx%d", width, height)
        return targets

    def _grow(self, buf: Any, nbytes: int) -> Any:
        """A buffer of at least nbytes: the same one when big enough, else a larger one."""
        if buf is not None and buf.size >= nbytes:
            return buf
        size = max(nbytes, 1024) if buf is None else max(nbytes, buf.size * 3 // 2)
        if buf is None:
            return self._ctx.buffer(reserve=size)
        buf.orphan(size)
        return buf

    def _upload(self, pos_clip: torch.Tensor, tri: torch.Tensor) -> None:
        pos = pos_clip.detach().to("cpu").contiguous()
        if pos.numel() * 4 > self._max_block_bytes:
            raise ValueError(
                f"{pos.shape[0]} vertices exceed this GL implementation's storage block limit "
                f"({self._max_block_bytes // 16} vertices)"
            )
        self._pos_buf = self._grow(self._pos_buf, pos.numel() * 4)
        self._pos_buf.write(pos.numpy())
        # Topology rarely changes between calls: skip the int32 conversion and upload when the
        # very same, unmodified tensor comes again (held here, so its memory can't be reused).
        if tri is not self._tri_source or tri._version != self._tri_version:
            _, self._tri_max = check_index_range(tri, pos.shape[0])
            faces = tri.detach().to(device="cpu", dtype=torch.int32).contiguous()
            self._tri_buf = self._grow(self._tri_buf, faces.numel() * 4)
            self._tri_buf.write(faces.numpy())
            self._faces = faces
            self._tri_source, self._tri_version = tri, tri._version
        elif self._tri_max >= pos.shape[0]:
            raise ValueError(f"tri indices must lie in [0, {pos.shape[0]}), got max {self._tri_max}")

    def _face_chunk(self) -> int:
        """Faces per draw or dispatch: a storage block's worth, a multiple of the granule."""
        per_block = (self._max_block_bytes // 12) // _FACE_CHUNK_GRANULE * _FACE_CHUNK_GRANULE
        return max(_FACE_CHUNK_GRANULE, min(per_block, _MAX_CULL_FACES))

    def _cull(self, width: int, height: int) -> tuple[Any, int, torch.Tensor]:
        """The faces worth drawing at this size: (their buffer, their count, (1 + count) id map).

        The compute shader marks each uploaded face in one bit; the marked faces are uploaded in
        face order (so draws stay deterministic) and id_map[1 + i] is the i-th one's face index,
        id_map[0] = -1 for empty pixels.
        """
        n_faces = self._faces.shape[0]
        words = -(-n_faces // 32)
        self._keep_buf = self._grow(self._keep_buf, words * 4)
        self._keep_buf.bind_to_storage_buffer(binding=2)
        program = self._cull_program
        program["u_size"] = (float(width), float(height))
        chunk = self._face_chunk()
        for start in range(0, n_faces, chunk):
            count = min(chunk, n_faces - start)
            self._tri_buf.bind_to_storage_buffer(binding=1, offset=start * 12, size=count * 12)
            program["u_count"] = count
            program["u_word_offset"] = start // 32
            program.run(group_x=-(-count // (32 * _CULL_GROUP)))
        bits = np.frombuffer(self._keep_buf.read(size=words * 4), dtype=np.uint8)
        kept = torch.from_numpy(np.flatnonzero(np.unpackbits(bits, count=n_faces, bitorder="little")))
        drawn = self._faces.index_select(0, kept)
        self._drawn_buf = self._grow(self._drawn_buf, max(drawn.numel(), 1) * 4)
        self._drawn_buf.write(drawn.numpy())
        return self._drawn_buf, drawn.shape[0], torch.cat([kept.new_full((1,), -1), kept])

    def _rasterize_cpu(self, pos_clip: torch.Tensor, tri: torch.Tensor, height: int, width: int, layers: int) -> Fragments:
        import moderngl

        ctx = self._ctx
        self._upload(pos_clip, tri)
        targets = self._get_targets(height, width)
        self._pos_buf.bind_to_storage_buffer(binding=0)
        if self._shader_cull:
            faces_buf, n_faces, id_map = self._cull(width, height)
        else:
            faces_buf, n_faces, id_map = self._tri_buf, tri.shape[0], None
        self.drawn_faces = n_faces
        chunk = self._face_chunk()

        ctx.enable_only(moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        ctx.depth_func = "<"
        ctx.front_face = "cw"
        ctx.cull_face = "back"

        tri_id = torch.empty((layers, height, width), dtype=torch.int64)
        bary = torch.empty((layers, height, width, 3), dtype=torch.float32)
        depth = torch.empty((layers, height, width), dtype=torch.float32)
        for k in range(layers):
            fbo = targets.fbos[k % 2]
            fbo.use()
            fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)  # id 0, bary 0, 1/z 0: empty
            self._program["u_peel"] = int(k > 0)
            if k > 0:
                targets.inv_z_texs[(k - 1) % 2].use(location=0)
            for start in range(0, n_faces, chunk):
                count = min(chunk, n_faces - start)
                faces_buf.bind_to_storage_buffer(binding=1, offset=start * 12, size=count * 12)
                self._program["u_face_offset"] = start
                self._vao.render(moderngl.TRIANGLES, vertices=3 * count)
            fbo.read_into(targets.id_staging.numpy(), components=1, attachment=0, dtype="i4")
            fbo.read_into(bary[k].numpy(), components=3, attachment=1, dtype="f4")
            fbo.read_into(depth[k].numpy(), components=1, attachment=2, dtype="f4")
            if id_map is None:
                torch.sub(targets.id_staging, 1, out=tri_id[k])
            else:
                torch.index_select(id_map, 0, targets.id_staging.view(-1), out=tri_id[k].view(-1))
            torch.reciprocal(depth[k], out=depth[k])  # 1/0 = +inf where empty
        return Fragments(tri_id=tri_id, bary=bary, depth=depth)
