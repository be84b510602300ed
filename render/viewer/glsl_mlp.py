"""The appearance network compiled to a GLSL 4.30 compute shader: code generated from its structure, weights in a buffer.

One invocation per pixel (8×8 work groups, early out where the G-buffer has no coverage) evaluates
the whole network on vec4 blocks: every layer's input and output are padded to multiples of 4 and
its weight matrix is stored as a grid of column-major mat4 blocks, so the inner loop is one
`mat4 * vec4` per 16 weights (`UNROLL` of them per iteration). The code depends only on
`MLPWeights.signature` (widths, depth, residual blocks, PE octaves, h's output, whether there is
a c); new weights of the same structure are a buffer upload, not a recompile.

ReLUs are applied where a value is written, never in the inner loop: a stage's output is written
through the ReLU when the next stage is a layer (which reads through one), raw when it is a
residual block (whose skip needs the raw value). A block copies ReLU(x) aside, runs its layers
(all but the last writing through the ReLU the next one reads through) and adds the result to x.

Compile time and llvmpipe: the network's loops run to `n + u_zero` (a uniform that is always 0)
and the activation arrays are longer than 32 vec4s (`MIN_ARRAY`), so no compiler unrolls a loop
whole; each inner iteration does `UNROLL` blocks instead. Measured on llvmpipe with constant
bounds, or with arrays of at most 32 vec4s (from which Mesa bounds a loop that indexes them),
short loops were unrolled: a DVR field of 3 blocks of width 32 took minutes to compile and the CPU
preset's (3 × 128) ran LLVM out of memory. llvmpipe also ends every loop of an invocation after
65535 iterations in all (silently: later layers then sum only part of their inputs), so blocks
of `UNROLL` keep DVR's paper field (5 × 512, ~44K iterations) under it and `GLSLShader` refuses a
network that is not (`loop_iterations`). As generated, every size tried (NDS's paper shader and
small ones, DVR fields from 2 × 32 to 5 × 512) compiles in 0.1–2 s there and matches torch
within 0.5/255.

Padding is done on the Python side by re-indexing the weight columns: the positional encoding is
fed as blocks [x, 0], [sin(f₀x), 0], [cos(f₀x), 0], ... and c's input as [h (padded to F4 blocks)],
[n, 0], [ω, 0]; zero columns make the padding lanes irrelevant and zero rows keep padded outputs at
0 through ReLU, so h's padding lanes are exactly 0 (edits, projections and centroids rely on it).

Buffers (std430, vec4 arrays):
    binding 0 `Weights`: per layer, OUT4·IN4 mat4 blocks (4 vec4 each), then OUT4 bias vec4s.
    binding 1 `Extras`: whatever the display mode needs, located by offset uniforms (see `pack_extras`):
        projection: mean (F4), basis rows (3·F4), low, high
        centroids (edit membership, and separately the materials-mode ones): K × (F4 + 1), the
            extra vec4 holding |c|² in .x (the distance is |h|² − 2 h·c + |c|², as in torch)
        edits: E × (F4 + 2): target (F4), (centre.xyz, radius), (source, weight, 0, 0)
        palette: K colours
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from render.viewer.inputs import ShadingInputs
from render.viewer.mlp import (
    MATERIAL_AMBIENT,
    MATERIAL_DIFFUSE,
    MATERIAL_DIM,
    MATERIAL_DIM_OFFSET,
    Layer,
    MLPWeights,
    ResidualBlock,
    material_palette,
)

log = logging.getLogger(__name__)

LOCAL_SIZE = 8
MIN_ARRAY = 40  # vec4s per activation array at least, above 32 (module docstring: compile time)
UNROLL = 4  # input blocks per iteration of a layer's inner loop (module docstring: llvmpipe's loop cap)
# llvmpipe ends every loop of an invocation once it has run 65535 iterations in all; what the
# network may use of them, the rest left to the display modes' loops over centroids and edits.
LLVMPIPE_LOOP_BUDGET = 60_000
# +inf radii ("the whole material") become this: GLSL compilers may fold comparisons with inf oddly.
HUGE_RADIUS = 3.0e38

MODE_CODES = {"neural": 0, "features": 1, "materials": 2}


def _blocks(n: int) -> int:
    return (n + 3) // 4


def _column_map(segments: list[int]) -> np.ndarray:
    """Padded column of each input column when each segment is padded to a multiple of 4."""
    columns, start = [], 0
    for length in segments:
        columns.append(start + np.arange(length))
        start += 4 * _blocks(length)
    return np.concatenate(columns)


@dataclass(frozen=True)
class _LayerLayout:
    in4: int
    out4: int
    weight_offset: int  # in vec4 units
    bias_offset: int


def _layers_in_order(w: MLPWeights) -> list[tuple[Layer, list[int]]]:
    """Every layer in evaluation order (h's, blocks' included, then c's) with its input segments
    (padding is per segment): the encoding [x, sin, cos, ...] for h's first, [h, n, ω] for c's."""
    result: list[tuple[Layer, list[int]]] = []
    for i, stage in enumerate(w.h_layers):
        if isinstance(stage, ResidualBlock):
            result += [(layer, [int(layer[0].shape[1])]) for layer in stage.layers]
        else:
            result.append((stage, [3] * (1 + 2 * w.pe_octaves) if i == 0 else [int(stage[0].shape[1])]))
    for i, layer in enumerate(w.c_layers):
        result.append((layer, [w.features, 3, 3] if i == 0 else [int(layer[0].shape[1])]))
    return result


def layer_layouts(w: MLPWeights) -> list[_LayerLayout]:
    """Where each layer's mat4 blocks and biases lie in the Weights buffer (from the structure alone)."""
    layouts, offset = [], 0
    for (W, _), segments in _layers_in_order(w):
        in4, out4 = sum(_blocks(s) for s in segments), _blocks(int(W.shape[0]))
        layouts.append(_LayerLayout(in4, out4, offset, offset + 4 * in4 * out4))
        offset += 4 * in4 * out4 + out4
    return layouts


def pack_weights(w: MLPWeights) -> np.ndarray:
    """All layers as one float32 (N, 4) array of vec4s, laid out as `layer_layouts` says."""
    chunks: list[np.ndarray] = []
    for ((W, b), segments), layout in zip(_layers_in_order(w), layer_layouts(w)):
        W = W.detach().to("cpu", torch.float32).numpy()
        out_dim = W.shape[0]
        padded = np.zeros((layout.out4 * 4, layout.in4 * 4), np.float32)
        padded[:out_dim, _column_map(segments)] = W
        # (o4, r, i4, j) → (o4, i4, j, r): block (o4, i4) is 4 columns j of 4 rows r, column-major.
        blocks = padded.reshape(layout.out4, 4, layout.in4, 4).transpose(0, 2, 3, 1).reshape(-1, 4)
        bias = np.zeros(layout.out4 * 4, np.float32)
        bias[:out_dim] = b.detach().to("cpu", torch.float32).numpy()
        chunks += [blocks, bias.reshape(-1, 4)]
    return np.ascontiguousarray(np.concatenate(chunks))


def _pad_features(t: torch.Tensor, f4: int) -> np.ndarray:
    """(..., F) → (..., 4·F4) float32 with zero padding."""
    a = t.detach().to("cpu", torch.float32).numpy()
    out = np.zeros((*a.shape[:-1], 4 * f4), np.float32)
    out[..., : a.shape[-1]] = a
    return out


def _centroid_table(centroids: torch.Tensor, f4: int) -> np.ndarray:
    c = _pad_features(centroids, f4).reshape(centroids.shape[0], f4, 4)
    norms = np.zeros((centroids.shape[0], 1, 4), np.float32)
    norms[:, 0, 0] = (centroids.detach().to("cpu", torch.float32) ** 2).sum(-1).numpy()
    return np.concatenate([c, norms], axis=1).reshape(-1, 4)


@dataclass(frozen=True)
class ExtrasLayout:
    """Offsets (vec4 units, -1 = absent) and counts of the Extras buffer, as uniforms."""

    projection: int = -1
    edit_centroids: int = -1
    edits: int = -1
    edit_count: int = 0
    materials: int = -1
    material_count: int = 0
    palette: int = -1


def pack_extras(features: int, inputs: ShadingInputs) -> tuple[np.ndarray, ExtrasLayout]:
    """The Extras buffer (float32 (N, 4), at least one vec4) for the given mode inputs.

    The palette holds one vec4 per centroid: its colour, and in .a the material id `highlight`
    compares with (the centroid's own index, or `cell_material` when centroids are cells).
    """
    f4 = _blocks(features)
    chunks: list[np.ndarray] = []
    offsets: dict[str, int] = {}
    size = 0

    def add(name: str, data: np.ndarray) -> None:
        nonlocal size
        offsets[name] = size
        chunks.append(data.reshape(-1, 4).astype(np.float32))
        size += chunks[-1].shape[0]

    projection, edits, centroids, cell_material = inputs.projection, inputs.edits, inputs.centroids, inputs.cell_material
    if projection is not None:
        low = np.zeros(4, np.float32)
        high = np.zeros(4, np.float32)
        low[:3] = projection.low.detach().to("cpu", torch.float32).numpy()
        high[:3] = projection.high.detach().to("cpu", torch.float32).numpy()
        add("projection", np.concatenate([
            _pad_features(projection.mean, f4).reshape(-1, 4),
            _pad_features(projection.basis, f4).reshape(-1, 4),
            low[None], high[None],
        ]))
    edit_count = 0
    if edits is not None and edits.count > 0:
        edit_count = edits.count
        add("edit_centroids", _centroid_table(edits.centroids, f4))
        region = np.zeros((edit_count, 2, 4), np.float32)
        region[:, 0, :3] = edits.centre.detach().to("cpu", torch.float32).numpy()
        radius = edits.radius.detach().to("cpu", torch.float64).numpy()
        region[:, 0, 3] = np.where(np.isfinite(radius), np.minimum(radius, HUGE_RADIUS), HUGE_RADIUS)
        region[:, 1, 0] = edits.source.detach().to("cpu").numpy().astype(np.float32)
        region[:, 1, 1] = edits.weight.detach().to("cpu", torch.float32).numpy()
        target = _pad_features(edits.target, f4).reshape(edit_count, f4, 4)
        add("edits", np.concatenate([target, region], axis=1))
    material_count = 0
    if centroids is not None and centroids.shape[0] > 0:
        material_count = int(centroids.shape[0])
        add("materials", _centroid_table(centroids, f4))
        palette = np.zeros((material_count, 4), np.float32)
        if cell_material is None:
            palette[:, :3] = material_palette(material_count).numpy()
            palette[:, 3] = np.arange(material_count, dtype=np.float32)
        else:
            ids = cell_material.detach().to("cpu", torch.int64)
            palette[:, :3] = material_palette(int(ids.max()) + 1)[ids].numpy()
            palette[:, 3] = ids.numpy().astype(np.float32)
        add("palette", palette)
    if not chunks:
        add("empty", np.zeros((1, 4), np.float32))
    layout = ExtrasLayout(
        projection=offsets.get("projection", -1),
        edit_centroids=offsets.get("edit_centroids", -1),
        edits=offsets.get("edits", -1),
        edit_count=edit_count,
        materials=offsets.get("materials", -1),
        material_count=material_count,
        palette=offsets.get("palette", -1),
    )
    return np.ascontiguousarray(np.concatenate(chunks)), layout


def _float_literal(value: float) -> str:
    """A GLSL literal that rounds to the same float32 as torch's value."""
    return repr(float(np.float32(value))) if math.isfinite(value) else "0.0"


_ACTIVATIONS = {"none": "{}", "relu": "max({}, vec4(0.0))", "sigmoid": "1.0 / (1.0 + exp(-{}))"}


def _product(offset: int, src: str) -> str:
    """One 4×4 block of a layer: the mat4 at wts[k + offset ..] times an input vec4."""
    columns = ", ".join(f"wts[k + {offset + c}]" if offset + c else "wts[k]" for c in range(4))
    return f"mat4({columns}) * {src}"


def _layer_code(layout: _LayerLayout, src: str, dst: str, activation: str) -> str:
    """dst = activation(W src + b): UNROLL input blocks per inner iteration, the rest after the loop."""
    full = layout.in4 - layout.in4 % UNROLL
    inner = ""
    if full:
        terms = " +\n                 ".join(
            _product(4 * j, f"{src}[i + {j}]" if j else f"{src}[i]") for j in range(UNROLL)
        )
        inner = f"""
        for (int i = 0; i < {full} + u_zero; i += {UNROLL}, k += {4 * UNROLL}) {{
            s += {terms};
        }}"""
    tail = "".join(f"\n        s += {_product(4 * (j - full), f'{src}[{j}]')};" for j in range(full, layout.in4))
    return f"""
    for (int o = 0; o < {layout.out4} + u_zero; ++o) {{
        vec4 s = wts[{layout.bias_offset} + o];
        int k = {layout.weight_offset} + o * {4 * layout.in4};{inner}{tail}
        {dst}[o] = {_ACTIVATIONS[activation].format("s")};
    }}"""


def loop_iterations(w: MLPWeights) -> int:
    """Loop iterations one invocation runs through the network (llvmpipe caps them: module docstring)."""
    layers = sum(l.out4 * (1 + l.in4 // UNROLL) for l in layer_layouts(w))
    copies = sum(2 * _blocks(s.width) for s in w.h_layers if isinstance(s, ResidualBlock))
    return layers + copies


def _other(buffer: str) -> str:
    """The ping-pong partner of act0 / act1 (act2 is a residual block's second scratch buffer)."""
    return "act1" if buffer == "act0" else "act0"


def _block_code(block: ResidualBlock, layouts: Iterator[_LayerLayout], x: str, relu_out: bool) -> str:
    """x ← x + L_k(ReLU(… L_1(ReLU(x)))), through ReLU when the next stage reads through one."""
    width4 = _blocks(block.width)
    scratch = (_other(x), "act2")
    code = [f"""
    for (int i = 0; i < {width4} + u_zero; ++i) {{
        {scratch[0]}[i] = max({x}[i], vec4(0.0));
    }}"""]
    for j in range(len(block.layers)):
        last = j == len(block.layers) - 1
        code.append(_layer_code(next(layouts), scratch[j % 2], scratch[(j + 1) % 2], "none" if last else "relu"))
    total = _ACTIVATIONS["relu" if relu_out else "none"].format(f"{x}[i] + {scratch[len(block.layers) % 2]}[i]")
    code.append(f"""
    for (int i = 0; i < {width4} + u_zero; ++i) {{
        {x}[i] = {total};
    }}""")
    return "".join(code)


def _h_code(w: MLPWeights, layouts: Iterator[_LayerLayout]) -> str:
    """h from the encoding in act0; a stage writes through ReLU when the next is a layer (module docstring)."""
    code, src = [], "act0"
    stages = w.h_layers
    for i, stage in enumerate(stages):
        last = i == len(stages) - 1
        relu_out = not last and not isinstance(stages[i + 1], ResidualBlock)
        if isinstance(stage, ResidualBlock):
            code.append(_block_code(stage, layouts, src, relu_out))
            continue
        if last:
            activation = "sigmoid" if w.h_output == "sigmoid" else "none"
        else:
            activation = "relu" if relu_out else "none"
        dst = "h" if last else _other(src)
        code.append(_layer_code(next(layouts), src, dst, activation))
        src = dst
    if w.h_output == "sigmoid" and w.features % 4:  # σ(0) = 0.5: put the padding lanes back to 0
        mask = ", ".join("1.0" if lane < w.features % 4 else "0.0" for lane in range(4))
        code.append(f"\n    h[{_blocks(w.features) - 1}] *= vec4({mask});")
    return "".join(code)


def _color_code(w: MLPWeights, layouts: Iterator[_LayerLayout]) -> str:
    """`vec3 rgb` from h, n and ω: c's layers with a sigmoid after the last, or h for a position-only appearance."""
    if w.position_only:
        return "\n    vec3 rgb = h[0].xyz;"
    code = ["""
    for (int i = 0; i < F4; ++i) {
        act0[i] = h[i];
    }
    act0[F4] = vec4(n, 0.0);
    act0[F4 + 1] = vec4(omega, 0.0);"""]
    src = "act0"
    for i in range(len(w.c_layers)):
        dst = _other(src)
        code.append(_layer_code(next(layouts), src, dst, "sigmoid" if i == len(w.c_layers) - 1 else "relu"))
        src = dst
    code.append(f"\n    vec3 rgb = {src}[0].xyz;")
    return "".join(code)


def generate_compute_source(w: MLPWeights) -> str:
    """GLSL 4.30 compute shader source for networks of `w`'s structure (see the module docstring)."""
    layouts = layer_layouts(w)
    order = iter(layouts)
    h_code = _h_code(w, order)
    color_code = _color_code(w, order)
    f4 = _blocks(w.features)
    length = max(MIN_ARRAY, *(max(l.in4, l.out4) for l in layouts))
    scratch = f"vec4 act2[{length}];" if any(isinstance(s, ResidualBlock) for s in w.h_layers) else ""
    freqs = [_float_literal(math.pi * 2.0**k) for k in range(w.pe_octaves)]

    pe_lines = ["    act0[0] = vec4(x, 0.0);"]
    for k, f in enumerate(freqs):
        pe_lines.append(f"    angle = x * {f};")
        pe_lines.append(f"    act0[{1 + 2 * k}] = vec4(sin(angle), 0.0);")
        pe_lines.append(f"    act0[{2 + 2 * k}] = vec4(cos(angle), 0.0);")

    return f"""#version 430
// Generated by render/viewer/glsl_mlp.py for MLPWeights.signature {w.signature}.
layout(local_size_x = {LOCAL_SIZE}, local_size_y = {LOCAL_SIZE}) in;
layout(rgba32f, binding = 0) readonly uniform image2D u_position;  // xyz, w = coverage
layout(rgba32f, binding = 1) readonly uniform image2D u_normal;
layout(rgba8, binding = 2) writeonly uniform image2D u_color;
layout(std430, binding = 0) readonly buffer Weights {{ vec4 wts[]; }};
layout(std430, binding = 1) readonly buffer Extras {{ vec4 ext[]; }};
layout(std430, binding = 2) buffer Counter {{ uint covered; }};
uniform ivec2 u_size;
uniform vec3 u_eye;
uniform int u_mode;  // 0 neural, 1 features, 2 materials
uniform int u_projection;
uniform int u_edit_centroids;
uniform int u_edits;
uniform int u_edit_count;
uniform int u_materials;
uniform int u_material_count;
uniform int u_palette;
uniform int u_highlight;  // -1: none
uniform int u_count;  // count covered pixels into Counter (one atomic per pixel, so only on request)
uniform int u_zero;  // always 0: added to loop bounds so that no compiler unrolls them

const int F4 = {f4};
vec4 h[F4];
vec4 act0[{length}];
vec4 act1[{length}];
{scratch}

int nearest(int table, int count) {{
    float hh = 0.0;
    for (int i = 0; i < F4; ++i) {{
        hh += dot(h[i], h[i]);
    }}
    int best = 0;
    float best_d = 0.0;
    for (int k = 0; k < count; ++k) {{
        int base = table + k * (F4 + 1);
        float hc = 0.0;
        for (int i = 0; i < F4; ++i) {{
            hc += dot(h[i], ext[base + i]);
        }}
        float d = hh - 2.0 * hc + ext[base + F4].x;
        if (k == 0 || d < best_d) {{
            best = k;
            best_d = d;
        }}
    }}
    return best;
}}

void main() {{
    ivec2 p = ivec2(gl_GlobalInvocationID.xy);
    if (p.x >= u_size.x || p.y >= u_size.y) {{
        return;
    }}
    vec4 position = imageLoad(u_position, p);
    if (position.w <= 0.0) {{
        return;
    }}
    if (u_count != 0) {{
        atomicAdd(covered, 1u);
    }}
    vec3 x = position.xyz;
    vec3 n = imageLoad(u_normal, p).xyz;
    vec3 omega = normalize(u_eye - x);
    vec3 angle;
{chr(10).join(pe_lines)}
{h_code}

    if (u_mode == 2) {{
        int m = nearest(u_materials, u_material_count);
        vec3 base = ext[u_palette + m].rgb;
        if (u_highlight >= 0 && int(ext[u_palette + m].a + 0.5) != u_highlight) {{
            base = base * {_float_literal(MATERIAL_DIM)} + {_float_literal(MATERIAL_DIM_OFFSET)};
        }}
        float light = {_float_literal(MATERIAL_AMBIENT)} + {_float_literal(MATERIAL_DIFFUSE)} * max(dot(n, omega), 0.0);
        imageStore(u_color, p, vec4(base * light, 1.0));
        return;
    }}
    if (u_edit_count > 0) {{
        int m = nearest(u_edit_centroids, u_edit_count);
        for (int e = 0; e < u_edit_count; ++e) {{
            int base = u_edits + e * (F4 + 2);
            vec4 region = ext[base + F4];
            vec4 which = ext[base + F4 + 1];
            if (m == int(which.x) && length(x - region.xyz) <= region.w) {{
                float wgt = which.y;
                for (int i = 0; i < F4; ++i) {{
                    h[i] = (1.0 - wgt) * h[i] + wgt * ext[base + i];
                }}
            }}
        }}
    }}
    if (u_mode == 1) {{
        vec3 comp = vec3(0.0);
        for (int i = 0; i < F4; ++i) {{
            vec4 d = h[i] - ext[u_projection + i];
            comp += vec3(dot(d, ext[u_projection + F4 + i]), dot(d, ext[u_projection + 2 * F4 + i]),
                         dot(d, ext[u_projection + 3 * F4 + i]));
        }}
        vec3 low = ext[u_projection + 4 * F4].xyz;
        vec3 high = ext[u_projection + 4 * F4 + 1].xyz;
        imageStore(u_color, p, vec4(clamp((comp - low) / max(high - low, vec3(1e-12)), 0.0, 1.0), 1.0));
        return;
    }}
{color_code}
    imageStore(u_color, p, vec4(rgb, 1.0));
}}
"""


def _set_uniform(program: Any, name: str, value: Any) -> None:
    """Set a uniform if the compiler kept it (unused ones are optimised away)."""
    member = program.get(name, None)
    if member is not None:
        member.value = value


class GLSLShader:
    """GL state of the compute-shader path: the program (per weight sizes) and its three buffers.

    Needs an OpenGL 4.3 context current on the calling thread; `release()` frees everything.
    """

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._program: Any = None
        self._signature: tuple[object, ...] | None = None
        self._weights_buf: Any = None
        self._extras_buf: Any = None
        self._counter_buf = ctx.buffer(reserve=4)
        self._extras_layout = ExtrasLayout()
        self._features = 0

    def set_weights(self, w: MLPWeights) -> None:
        """Upload the weights; regenerate and compile the program only when the structure changed.

        Raises:
            RuntimeError: on llvmpipe, a network that needs more loop iterations than it runs
                (the pipeline then falls back to another path, saying why).
        """
        if "llvmpipe" in str(self.ctx.info["GL_RENDERER"]).lower() and loop_iterations(w) > LLVMPIPE_LOOP_BUDGET:
            raise RuntimeError(
                f"llvmpipe stops a compute shader after 65535 loop iterations; this network needs "
                f"{loop_iterations(w)} per pixel (use the cpu path)"
            )
        if w.signature != self._signature:
            source = generate_compute_source(w)
            program = self.ctx.compute_shader(source)  # raises on a compile error, keeping the old state
            if self._program is not None:
                self._program.release()
            self._program, self._signature = program, w.signature
            log.info("GLSL shading: compiled the network compute shader for structure %s", w.signature)
        data = pack_weights(w)
        self._weights_buf = _replace_buffer(self.ctx, self._weights_buf, data)
        self._features = w.features

    def set_extras(self, inputs: ShadingInputs) -> None:
        """Upload what the features/materials modes and the edits need (sizes must fit the weights)."""
        data, self._extras_layout = pack_extras(self._features, inputs)
        self._extras_buf = _replace_buffer(self.ctx, self._extras_buf, data)

    def shade(
        self,
        position: Any,
        normal: Any,
        color: Any,
        size: tuple[int, int],
        eye: np.ndarray,
        mode: str,
        highlight: int | None,
        count: bool,
    ) -> int:
        """Dispatch over the (w, h) G-buffer textures into `color` (RGBA8); covered pixels if `count`, else -1."""
        if self._program is None or self._extras_buf is None:
            raise RuntimeError("GLSLShader.shade before set_weights/set_extras")
        prog, layout = self._program, self._extras_layout
        position.bind_to_image(0, read=True, write=False)
        normal.bind_to_image(1, read=True, write=False)
        color.bind_to_image(2, read=False, write=True)
        self._weights_buf.bind_to_storage_buffer(0)
        self._extras_buf.bind_to_storage_buffer(1)
        self._counter_buf.bind_to_storage_buffer(2)
        if count:
            self._counter_buf.write(np.zeros(1, np.uint32).tobytes())
        values = {
            "u_size": (int(size[0]), int(size[1])),
            "u_eye": tuple(float(v) for v in eye),
            "u_mode": MODE_CODES[mode],
            "u_projection": layout.projection,
            "u_edit_centroids": layout.edit_centroids,
            "u_edits": layout.edits,
            "u_edit_count": layout.edit_count,
            "u_materials": layout.materials,
            "u_material_count": layout.material_count,
            "u_palette": layout.palette,
            "u_highlight": -1 if highlight is None else int(highlight),
            "u_count": int(count),
            "u_zero": 0,
        }
        for name, value in values.items():
            _set_uniform(prog, name, value)
        prog.run((size[0] + LOCAL_SIZE - 1) // LOCAL_SIZE, (size[1] + LOCAL_SIZE - 1) // LOCAL_SIZE)
        self.ctx.memory_barrier()
        if not count:
            return -1
        return int(np.frombuffer(self._counter_buf.read(), np.uint32)[0])

    def release(self) -> None:
        for obj in (self._program, self._weights_buf, self._extras_buf, self._counter_buf):
            if obj is not None:
                obj.release()
        self._program = self._weights_buf = self._extras_buf = self._counter_buf = None
        self._signature = None


def _replace_buffer(ctx: Any, buf: Any, data: np.ndarray) -> Any:
    """`buf` refilled with `data` (orphaned to the new size when it differs), or a new buffer."""
    raw = data.tobytes()
    if buf is None:
        return ctx.buffer(raw)
    if buf.size != len(raw):
        buf.orphan(len(raw))
    buf.write(raw)
    return buf
