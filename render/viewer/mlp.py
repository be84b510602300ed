"""The neural shader as plain tensors, and the torch reference every viewer shading path must match.

`render` may not import `recon`, so the viewer receives the shader as an `MLPWeights` (built by
`recon.shader.NeuralShader.mlp_weights()`), and the one definition of the positional encoding lives
here (`recon.shader.PositionalEncoding` calls `positional_encoding`).

    x ─PE─> h_layers (ReLU between, none after the last) ─> h      = mlp_features(w, x)
    [h, n, ω] ─> c_layers (ReLU between, sigmoid after the last) ─> RGB = mlp_color(w, h, n, ω)

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
class MLPWeights:
    """The neural shader f(x, n, ω) = c(h(x), n, ω) as plain tensors (no nn.Module, no recon).

    Attributes:
        pe_octaves: K of the positional encoding of x (0 = x alone).
        h_layers: [(W (out, in), b (out,)), ...]; ReLU between layers, none after the last.
            The first layer's input is 3 + 6·K wide, the last one's output is the F features.
        c_layers: the same for c; input cat(h, n, ω) (F + 6), sigmoid after the last (3 outputs).
    """

    pe_octaves: int
    h_layers: list[Layer]
    c_layers: list[Layer]

    def __post_init__(self) -> None:
        if not self.h_layers or not self.c_layers:
            raise ValueError("MLPWeights needs at least one h layer and one c layer")
        dim = 3 + 6 * self.pe_octaves
        for name, layers in (("h", self.h_layers), ("c", self.c_layers)):
            if name == "c":
                dim += 6
            for i, (W, b) in enumerate(layers):
                if W.ndim != 2 or W.shape[1] != dim or b.shape != (W.shape[0],):
                    raise ValueError(f"{name}_layers[{i}]: expected W (out, {dim}) and b (out,), got {tuple(W.shape)}, {tuple(b.shape)}")
                dim = W.shape[0]
        if dim != 3:
            raise ValueError(f"the last c layer must output 3 colours, got {dim}")

    @property
    def features(self) -> int:
        """F, the length of h."""
        return int(self.h_layers[-1][0].shape[0])

    @property
    def signature(self) -> tuple[int, ...]:
        """The sizes that decide generated code: (K, h widths..., -1, c widths...)."""
        return (
            self.pe_octaves,
            *(int(W.shape[0]) for W, _ in self.h_layers),
            -1,
            *(int(W.shape[0]) for W, _ in self.c_layers),
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> MLPWeights:
        """A copy with every tensor on `device` in `dtype` (None keeps each)."""

        def move(layers: list[Layer]) -> list[Layer]:
            return [(W.to(device=device, dtype=dtype), b.to(device=device, dtype=dtype)) for W, b in layers]

        return MLPWeights(self.pe_octaves, move(self.h_layers), move(self.c_layers))

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
        """Random weights in nn.Linear's default ranges times `gain` (tests and benchmarks).

        At gain 1 a deep net outputs nearly constant colours, as a fresh shader does; gain ≈ 2.5
        (He-uniform) keeps the activations' spread through the layers, more like a trained one.
        """
        g = torch.Generator().manual_seed(seed)

        def stack(dims: list[int]) -> list[Layer]:
            layers = []
            for fan_in, fan_out in zip(dims[:-1], dims[1:]):
                bound = gain / math.sqrt(fan_in)
                W = (torch.rand(fan_out, fan_in, generator=g) * 2 - 1) * bound
                b = (torch.rand(fan_out, generator=g) * 2 - 1) * bound
                layers.append((W, b))
            return layers

        h_dims = [3 + 6 * pe_octaves, *[hidden_h] * layers_h, features]
        c_dims = [features + 6, *[hidden_c] * layers_c, 3]
        return MLPWeights(pe_octaves, stack(h_dims), stack(c_dims))


def _run(layers: list[Layer], z: torch.Tensor) -> torch.Tensor:
    """Linear layers with ReLU between them (none after the last)."""
    for i, (W, b) in enumerate(layers):
        z = F.linear(z, W, b)
        if i + 1 < len(layers):
            z = torch.relu(z)
    return z


def mlp_features(w: MLPWeights, x: torch.Tensor) -> torch.Tensor:
    """h(x): normalised positions (..., 3) → features (..., F), in the weights' dtype.

    The encoding is computed in x's precision (float32 at least: sin(8πx) needs it) and then cast.
    """
    pe = positional_encoding(x if x.dtype == torch.float64 else x.float(), w.pe_octaves)
    return _run(w.h_layers, pe.to(w.h_layers[0][0].dtype))


def mlp_color(w: MLPWeights, h: torch.Tensor, n: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """c(h, n, ω): features (..., F), unit normals and view directions (..., 3) → RGB (..., 3) in (0, 1)."""
    dtype = w.c_layers[0][0].dtype
    lead = torch.broadcast_shapes(h.shape[:-1], n.shape[:-1], omega.shape[:-1])
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
