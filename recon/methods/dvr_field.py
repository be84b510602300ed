"""The DVR field network (Niemeyer et al. 2020, §3.1 and §3.5): occupancy f(p) and texture t(p) in one net.

    p ∈ [-1,1]³ ─PE─> (3 + 6·octaves)
        ─> Linear → hidden
        ─> blocks × ResNet block:  x + Linear(ReLU(Linear(ReLU(x))))
        ─> ReLU → Linear → 4 = (occupancy logit, texture logits r, g, b)

    f(p) = σ(logit)  occupancy probability; the surface is f = τ = 0.5, i.e. logit = 0
    t(p) = σ(texture logits) ∈ (0, 1)³, linear RGB like the images

Defaults are the paper's multi-view network: 5 fully-connected ResNet blocks, ReLU, hidden width
512, no positional encoding (the paper feeds p directly). `DVRFieldConfig.cpu()` is the smaller
CPU preset (3 blocks of width 128, 2 octaves of PE), about 1/16 of the paper's cost per point:
what it loses is the finest detail a 512-wide net can hold, which CPU-sized images do not resolve
anyway. Positional encoding (`render.viewer.mlp.positional_encoding`, the project's one definition,
also used by the NDS shader) lets a narrow net represent sharper occupancy edges; with many
octaves it also lets the field grow floaters, so keep it ≤ 4.

The second layer of each block starts at zero, so a fresh block is the identity and a fresh net is
shallow; the last layer's occupancy bias is `init_occupancy_logit`. The net works in the
normalised cube; callers map world points there first.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from recon.shader import TEXTURE_FORMAT_NAME
from render.viewer.mlp import MLPWeights, ResidualBlock, positional_encoding


@dataclass(frozen=True)
class DVRFieldConfig:
    """Sizes of the DVR field; the defaults are the paper's.

    Attributes:
        hidden: width of every hidden layer (paper 512).
        blocks: number of fully-connected ResNet blocks (paper 5).
        pe_octaves: K octaves of positional encoding of p (0 = p alone, the paper).
        init_occupancy_logit: initial bias of the occupancy output (0 = σ 0.5 everywhere, as
            PyTorch's default initialisation gives; not a setting of the paper).
    """

    hidden: int = 512
    blocks: int = 5
    pe_octaves: int = 0
    init_occupancy_logit: float = 0.0

    def __post_init__(self) -> None:
        for name, low in (("hidden", 1), ("blocks", 0), ("pe_octaves", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"DVR field config: {name} must be an integer, got {value!r}")
            if value < low:
                raise ValueError(f"DVR field config: {name} must be >= {low}, got {value}")
        if self.pe_octaves > 30:
            raise ValueError(f"DVR field config: pe_octaves = {self.pe_octaves} is beyond float32 precision (max 30)")
        for name, high in (("hidden", 2048), ("blocks", 16)):  # a file's config must not force a huge allocation
            if getattr(self, name) > high:
                raise ValueError(f"DVR field config: {name} = {getattr(self, name)} is above the maximum {high}")
        value = self.init_occupancy_logit
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"DVR field config: init_occupancy_logit must be a finite number, got {value!r}")

    @classmethod
    def cpu(cls) -> DVRFieldConfig:
        """The CPU preset: 3 blocks of width 128 and 2 PE octaves, ~1/16 of the paper's FLOPs per point."""
        return cls(hidden=128, blocks=3, pe_octaves=2)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DVRFieldConfig:
        """Inverse of `to_dict`; missing fields take the defaults, unknown ones are an error."""
        if not isinstance(data, Mapping):
            raise ValueError(f"DVR field config must be an object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"DVR field config: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(data))


class ResnetBlockFC(nn.Module):
    """x ↦ x + fc1(ReLU(fc0(ReLU(x)))), fc1 initialised to zero (a fresh block is the identity)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc0 = nn.Linear(width, width)
        self.fc1 = nn.Linear(width, width)
        nn.init.zeros_(self.fc1.weight)
        nn.init.zeros_(self.fc1.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc1(torch.relu(self.fc0(torch.relu(x))))


class DVRField(nn.Module):
    """Occupancy logits and texture of points in the normalised cube (module docstring).

    State-dict keys: `fc_in.*`, `blocks.<i>.fc0|fc1.*`, `fc_out.*`.
    """

    def __init__(self, config: DVRFieldConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else DVRFieldConfig()
        cfg = self.config
        self.fc_in = nn.Linear(3 * (1 + 2 * cfg.pe_octaves), cfg.hidden)
        self.blocks = nn.ModuleList(ResnetBlockFC(cfg.hidden) for _ in range(cfg.blocks))
        self.fc_out = nn.Linear(cfg.hidden, 4)
        with torch.no_grad():
            self.fc_out.bias[0] = cfg.init_occupancy_logit

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        """Points (..., 3) → raw outputs (..., 4): occupancy logit, then three texture logits."""
        if p.shape[-1:] != (3,):
            raise ValueError(f"DVR field: points must have shape (..., 3), got {tuple(p.shape)}")
        x = self.fc_in(positional_encoding(p, self.config.pe_octaves))
        for block in self.blocks:
            x = block(x)
        return self.fc_out(torch.relu(x))

    def occupancy_logit(self, p: torch.Tensor) -> torch.Tensor:
        """logit f(p) (...,): positive inside. The surface is the level 0 (τ = 0.5)."""
        return self(p)[..., 0]

    def occupancy(self, p: torch.Tensor) -> torch.Tensor:
        """f(p) = σ(logit) (...,), the occupancy probability."""
        return torch.sigmoid(self.occupancy_logit(p))

    def texture(self, p: torch.Tensor) -> torch.Tensor:
        """t(p) (..., 3) in (0, 1): the colour of a surface point."""
        return torch.sigmoid(self(p)[..., 1:])


class DVRTextureShader(nn.Module):
    """DVR's field behind the neural shader's calls, so viewers, exporters and evaluation shade it as is.

    DVR's appearance is t(p), position-only; the NDS shader is f(x, n, ω) = c(h(x), n, ω). Here
    h(x) = t(x) (the "features" are the colour itself, 3 of them) and c(h, n, ω) = h: n and ω
    are accepted and ignored. The occupancy output rides along in the same net (one state dict).

    State-dict keys: `field.<DVRField keys>`. `mlp_weights()` hands the texture branch to the
    viewer as plain tensors, like the neural shader's.
    """

    FILE_FORMAT = TEXTURE_FORMAT_NAME  # the tag `recon.shader.save_shader` writes for it

    def __init__(self, config: DVRFieldConfig | None = None, field: DVRField | None = None) -> None:
        super().__init__()
        self.field = field if field is not None else DVRField(config)
        self.config = self.field.config

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """h(x) = t(x) (..., 3): the texture is the whole appearance."""
        return self.field.texture(x)

    def color(self, h: torch.Tensor, n: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        """c(h, n, ω) = h, broadcast like the neural shader's (n and ω only shape the result)."""
        lead = torch.broadcast_shapes(h.shape[:-1], n.shape[:-1], omega.shape[:-1])
        return h.expand(*lead, 3)

    def forward(self, x: torch.Tensor, n: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        """RGB (..., 3) = t(x), whatever the normal and view direction."""
        return self.color(self.features(x), n, omega)

    def mlp_weights(self) -> MLPWeights:
        """Detached float32 CPU copies of t(x) for the viewer (`render.viewer`), which can't import recon.

        fc_in, the ResNet blocks, and fc_out without its occupancy row, then a sigmoid; no c, so
        the viewer's colour is h = t(x). A snapshot: later training steps don't change it.
        """

        def layer(m: nn.Linear, rows: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
            return (
                m.weight.detach()[rows].to("cpu", torch.float32).clone(),
                m.bias.detach()[rows].to("cpu", torch.float32).clone(),
            )

        f = self.field
        blocks = [ResidualBlock((layer(b.fc0), layer(b.fc1))) for b in f.blocks]
        stages = [layer(f.fc_in), *blocks, layer(f.fc_out, slice(1, None))]
        return MLPWeights(self.config.pe_octaves, stages, [], h_output="sigmoid")
