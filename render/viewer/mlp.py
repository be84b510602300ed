"""The appearance network as plain tensors, and the torch reference every viewer shading path must match.

`render` may not import `recon`, so the viewer receives the appearance as an `MLPWeights`: weights
and structure, built by `recon.shader.NeuralShader.mlp_weights()` (NDS's shader) or
`recon.methods.dvr_field.DVRTextureShader.mlp_weights()` (DVR's texture field). The one definition
of the positional encoding lives here (`recon.shader.PositionalEncoding` calls `positional_encoding`).

    x ─PE─> h stages ─> h (sigmoid when h_output says so)    = mlp_features(w, x)
    [h, n, ω] ─> c layers ─> sigmoid ─> RGB                  = mlp_color(w, h, n, ω)
    no c layers: RGB = h (a position-only appearance, F = 3)

A stage of h is a linear layer or a pre-activation `ResidualBlock`. Every layer of a part except
its first reads its input through a ReLU (for plain stacks: ReLU between layers, none after the
last); a residual block adds the chain of its layers to its raw input. NDS's shader is
[Linear]·(layers_h + 1) then c; DVR's field is Linear, blocks, Linear (the three texture logits),
h_output "sigmoid" and no c, so its colour t(x) is its h.

`shade_reference` adds the viewer's display modes ("neural", "features", "materials") on top, with
feature edits applied between h and c; the GLSL compute shader and the CUDA path are tested
against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from render.viewer.features import apply_feature_edits, nearest_material
from render.viewer.inputs import NO_INPUTS, ShadingInputs

Layer = tuple[torch.Tensor, torch.Tensor]  # W (out, in), b (out,)

NEURAL_MODES = ("neural", "features", "materials")


def positional_encoding(x: torch.Tensor, octaves: int) -> torch.Tensor:
    """x (..., 3) ↦ [x, sin(2^k π x) (3), cos(2^k π x) (3) for k < octaves] (..., 3 + 6·octaves).

    Per octave the three sines come before the three cosines; the GLSL generator and saved shader
    files depend on this exact order. Frequencies are π·2^k rounded once to x's dtype.
    """
    if octaves == 0:
        return x
    freqs = torch.pi * 2.0 ** torch.arange(octaves, dtype=x.dtype, device=x.device)
    angles = x[..., None, :] * freqs[:, None]  # (..., K, 3)
    waves = torch.stack((torch.sin(angles), torch.cos(angles)), dim=-2)  # (..., K, 2, 3)
    return torch.cat((x, waves.flatten(-3)), dim=-1)


@dataclass(frozen=True)
class ResidualBlock:
    """x ↦ x + L_k(ReLU(… L_1(ReLU(x)) …)): a pre-activation fully-connected ResNet block.

    DVR's field chains these (k = 2, its `ResnetBlockFC`). The skip adds the raw input, so the
    block cannot be rewritten as plain layers with ReLUs between them; every layer maps the
    block's width to itself.
    """

    layers: tuple[Layer, ...]

    @property
    def width(self) -> int:
        return int(self.layers[0][0].shape[1])


Stage = Layer | ResidualBlock
H_OUTPUTS = ("linear", "sigmoid")


def _check_layer(name: str, layer: Layer, dim: int) -> int:
    """The layer's output width, after checking it reads `dim` inputs."""
    W, b = layer
    if W.ndim != 2 or W.shape[1] != dim or b.shape != (W.shape[0],):
        raise ValueError(f"{name}: expected W (out, {dim}) and b (out,), got {tuple(W.shape)}, {tuple(b.shape)}")
    return int(W.shape[0])


@dataclass(frozen=True)
class MLPWeights:
    """The appearance f(x, n, ω) = c(h(x), n, ω) as plain tensors and structure (no nn.Module, no recon).

    Attributes:
        pe_octaves: K of the positional encoding of x (0 = x alone).
        h_layers: stages of h, each a layer (W (out, in), b (out,)) or a `ResidualBlock`; the
            first and the last are layers. Every layer but the first reads through a ReLU
            (module docstring). The first reads the 3 + 6·K encoding, the last outputs F features.
        c_layers: layers of c; input cat(h, n, ω) (F + 6), ReLU between, sigmoid after the last
            (3 outputs). Empty: c(h, n, ω) = h, a position-only appearance whose h is its colour.
        h_output: "linear" (NDS's latent features) or "sigmoid" (DVR's texture t(x) ∈ (0, 1)³).
    """

    pe_octaves: int
    h_layers: list[Stage]
    c_layers: list[Layer]
    h_output: str = "linear"

    def __post_init__(self) -> None:
        if not self.h_layers or any(isinstance(self.h_layers[i], ResidualBlock) for i in (0, -1)):
            raise ValueError("MLPWeights: h must start and end with a layer (residual blocks go between)")
        if self.h_output not in H_OUTPUTS:
            raise ValueError(f"MLPWeights: h_output must be one of {H_OUTPUTS}, got {self.h_output!r}")
        dim = 3 + 6 * self.pe_octaves
        for i, stage in enumerate(self.h_layers):
            if not isinstance(stage, ResidualBlock):
                dim = _check_layer(f"h_layers[{i}]", stage, dim)
                continue
            if not stage.layers:
                raise ValueError(f"h_layers[{i}]: a residual block needs at least one layer")
            width = dim
            for j, layer in enumerate(stage.layers):
                dim = _check_layer(f"h_layers[{i}].layers[{j}]", layer, dim)
            if dim != width:
                raise ValueError(f"h_layers[{i}]: a residual block must map its width {width} to itself, got {dim}")
        if not self.c_layers:
            if dim != 3:
                raise ValueError(f"a position-only appearance (no c layers) needs 3 features, its colour; got {dim}")
            return
        dim += 6
        for i, layer in enumerate(self.c_layers):
            dim = _check_layer(f"c_layers[{i}]", layer, dim)
        if dim != 3:
            raise ValueError(f"the last c layer must output 3 colours, got {dim}")

    @property
    def features(self) -> int:
        """F, the length of h."""
        return int(self.h_layers[-1][0].shape[0])  # type: ignore[index]

    @property
    def position_only(self) -> bool:
        """The colour is h itself: n and ω are ignored (DVR's texture field)."""
        return not self.c_layers

    @property
    def signature(self) -> tuple[object, ...]:
        """What decides generated code: (K, h_output, per h stage its width or ("res", widths...), "c", c widths...)."""

        def stage(s: Stage) -> object:
            if isinstance(s, ResidualBlock):
                return ("res", *(int(W.shape[0]) for W, _ in s.layers))
            return int(s[0].shape[0])

        return (
            self.pe_octaves,
            self.h_output,
            *(stage(s) for s in self.h_layers),
            "c",
            *(int(W.shape[0]) for W, _ in self.c_layers),
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> MLPWeights:
        """A copy with every tensor on `device` in `dtype` (None keeps each)."""

        def move(layer: Layer) -> Layer:
            return layer[0].to(device=device, dtype=dtype), layer[1].to(device=device, dtype=dtype)

        def move_stage(s: Stage) -> Stage:
            return ResidualBlock(tuple(move(l) for l in s.layers)) if isinstance(s, ResidualBlock) else move(s)

        return MLPWeights(
            self.pe_octaves, [move_stage(s) for s in self.h_layers], [move(l) for l in self.c_layers], self.h_output
        )

    @staticmethod
    def random(
        pe_octaves: int = 4,
        hidden_h: int = 256,
        layers_h: int = 3,
        features: int = 256,
        hidden_c: int = 128,
        layers_c: int = 2,
        seed: int = 0,
        gain: float = 1.0,
    ) -> MLPWeights:
        """NDS's structure with random weights in nn.Linear's default ranges times `gain` (tests and benchmarks).

        At gain 1 a deep net outputs nearly constant colours, as a fresh shader does; gain ≈ 2.5
        (He-uniform) keeps the activations' spread through the layers, more like a trained one.
        """
        g = torch.Generator().manual_seed(seed)
        h_dims = [3 + 6 * pe_octaves, *[hidden_h] * layers_h, features]
        c_dims = [features + 6, *[hidden_c] * layers_c, 3]
        return MLPWeights(pe_octaves, _random_stack(g, h_dims, gain), _random_stack(g, c_dims, gain))

    @staticmethod
    def random_field(pe_octaves: int = 0, hidden: int = 32, blocks: int = 2, seed: int = 0, gain: float = 1.0) -> MLPWeights:
        """DVR's texture-field structure (Linear, `blocks` residual blocks of two layers, Linear → 3,
        sigmoid, no c) with random weights as `random` draws them (tests and benchmarks)."""
        g = torch.Generator().manual_seed(seed)
        first = _random_stack(g, [3 + 6 * pe_octaves, hidden], gain)
        middle = [ResidualBlock(tuple(_random_stack(g, [hidden] * 3, gain))) for _ in range(blocks)]
        last = _random_stack(g, [hidden, 3], gain)
        return MLPWeights(pe_octaves, [*first, *middle, *last], [], h_output="sigmoid")


def _random_stack(g: torch.Generator, dims: list[int], gain: float) -> list[Layer]:
    """Layers dims[0] → dims[1] → …, uniform in ±gain/√fan_in like nn.Linear's default at gain 1."""
    layers = []
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        bound = gain / math.sqrt(fan_in)
        W = (torch.rand(fan_out, fan_in, generator=g) * 2 - 1) * bound
        b = (torch.rand(fan_out, generator=g) * 2 - 1) * bound
        layers.append((W, b))
    return layers


def _run(stages: list[Stage], z: torch.Tensor) -> torch.Tensor:
    """A part's stages: every layer but the first reads through a ReLU; a block adds its chain to its input."""
    for i, stage in enumerate(stages):
        if isinstance(stage, ResidualBlock):
            z = z + _run_block(stage, z)
        else:
            z = F.linear(torch.relu(z) if i else z, *stage)
    return z


def _run_block(block: ResidualBlock, z: torch.Tensor) -> torch.Tensor:
    """The residual branch L_k(ReLU(… L_1(ReLU(z)) …))."""
    for W, b in block.layers:
        z = F.linear(torch.relu(z), W, b)
    return z


def _dtype(w: MLPWeights) -> torch.dtype:
    return w.h_layers[0][0].dtype  # type: ignore[index]


def mlp_features(w: MLPWeights, x: torch.Tensor) -> torch.Tensor:
    """h(x): normalised positions (..., 3) → features (..., F), in the weights' dtype.

    The encoding is computed in x's precision (float32 at least: sin(8πx) needs it) and then cast.
    """
    pe = positional_encoding(x if x.dtype == torch.float64 else x.float(), w.pe_octaves)
    h = _run(w.h_layers, pe.to(_dtype(w)))
    return torch.sigmoid(h) if w.h_output == "sigmoid" else h


def mlp_color(w: MLPWeights, h: torch.Tensor, n: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """c(h, n, ω): features (..., F), unit normals and view directions (..., 3) → float32 RGB (..., 3).

    In (0, 1) through c's sigmoid, or h itself for a position-only appearance (n and ω only shape
    the result by broadcasting, as `DVRTextureShader.color` does).
    """
    lead = torch.broadcast_shapes(h.shape[:-1], n.shape[:-1], omega.shape[:-1])
    if w.position_only:
        return h.float().expand(*lead, 3)
    dtype = w.c_layers[0][0].dtype
    z = torch.cat(
        (h.to(dtype).expand(*lead, h.shape[-1]), n.to(dtype).expand(*lead, 3), omega.to(dtype).expand(*lead, 3)),
        dim=-1,
    )
    return torch.sigmoid(_run(w.c_layers, z).float())


# ------------------------------------------------------------------------- display modes


def material_palette(count: int) -> torch.Tensor:
    """(count, 3) distinct colours for material indices: golden-angle hues, fixed saturation/value.

    The GLSL path receives these values in its buffer, so both paths use the same colours.
    """
    hue = (torch.arange(count, dtype=torch.float64) * 0.618033988749895 + 0.08) % 1.0
    k = (torch.tensor([5.0, 3.0, 1.0], dtype=torch.float64) + hue[:, None] * 6.0) % 6.0
    s, v = 0.65, 0.95
    rgb = v - v * s * (torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))
    return rgb.float()


# Materials mode: colour · (AMBIENT + DIFFUSE · max(n·ω, 0)); materials other than the highlighted
# one are dimmed to DIM · colour + DIM_OFFSET so the selection stands out.
MATERIAL_AMBIENT = 0.4
MATERIAL_DIFFUSE = 0.6
MATERIAL_DIM = 0.3
MATERIAL_DIM_OFFSET = 0.1


def material_colors(
    material: torch.Tensor, n: torch.Tensor, omega: torch.Tensor, palette: torch.Tensor, highlight: int | None
) -> torch.Tensor:
    """Materials-mode RGB (..., 3) of samples whose nearest centroid is `material` (...,)."""
    base = palette.to(n.device)[material]
    if highlight is not None and highlight >= 0:
        dimmed = base * MATERIAL_DIM + MATERIAL_DIM_OFFSET
        base = torch.where((material == highlight)[..., None], base, dimmed)
    light = MATERIAL_AMBIENT + MATERIAL_DIFFUSE * (n * omega).sum(-1, keepdim=True).clamp_min(0.0)
    return base * light


def shade_reference(
    w: MLPWeights,
    x: torch.Tensor,
    n: torch.Tensor,
    omega: torch.Tensor,
    mode: str = "neural",
    inputs: ShadingInputs = NO_INPUTS,
) -> torch.Tensor:
    """RGB (N, 3) in [0, 1] of samples (x, n, ω) (N, 3) in one of the neural display modes.

    - "neural": c(edit(h(x)), n, ω), edits applied between h and c (`apply_feature_edits`).
    - "features": `projection(edit(h(x)))`, so edits show in the false colours too.
    - "materials": the palette colour of the nearest centroid of the *unedited* h (the same
      membership edits use), lit by a headlight; `inputs.highlight` (an index) dims the others.
      With `inputs.cell_material` (C,) int the centroids are cells of materials
      (recon.materials): colours and `highlight` are per material, `cell_material[nearest cell]`.
    Missing inputs (no projection, no centroids) raise ValueError; the pipeline checks first.
    """
    if mode not in NEURAL_MODES:
        raise ValueError(f"mode must be one of {NEURAL_MODES}, got {mode!r}")
    missing = inputs.missing(mode)
    if missing is not None:
        raise ValueError(f"{mode} mode: {missing}")
    h = mlp_features(w, x)
    if mode == "materials":
        centroids, cell_material = inputs.centroids, inputs.cell_material
        assert centroids is not None
        material = nearest_material(h.float(), centroids.to(x.device))
        count = centroids.shape[0]
        if cell_material is not None:
            material = cell_material.to(material.device)[material]
            count = int(cell_material.max()) + 1
        return material_colors(material, n.float(), omega.float(), material_palette(count), inputs.highlight)
    h = apply_feature_edits(h, x, inputs.edits)
    if mode == "features":
        assert inputs.projection is not None
        return inputs.projection(h.float())
    return mlp_color(w, h, n, omega)
