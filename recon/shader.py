"""The neural shader of NDS (Worchel et al. 2022, §3.1, Fig. 3) and its pickle-free file format.

Architecture (defaults in brackets), `f(x, n, ω) = c(h(x), n, ω)` as in the paper's eq. (10):

    x ∈ [-1,1]³ ─PE─> (3 + 6·octaves) [27]
        ─> layers_h × (Linear → hidden_h, ReLU)   [3 × 256]
        ─> Linear → features                       [256]      = h(x), no activation
    [h, n, ω] (features + 6) [262]
        ─> layers_c × (Linear → hidden_c, ReLU)   [2 × 128]
        ─> Linear → 3, sigmoid                                = RGB in (0, 1)

`layers_h` and `layers_c` count the hidden ReLU layers of each part, which is how the paper's
Fig. 3 ("3 fully-connected layers" → feature vector; "the last two layers" → colour) and the
design ("3×256 ReLU → 256 features; 2×128 ReLU → RGB sigmoid") count them; each part then ends
in a linear output layer. The feature output has no ReLU: h(x) is a latent code that material
editing swaps and PCA projects, and a ReLU there would clip half of it to zero and let feature
channels die for good. Weights use PyTorch's default `nn.Linear` initialisation (Kaiming-uniform
weights, a = √5, and uniform biases in ±1/√fan_in), so a fresh shader outputs colours near 0.5.

Positional encoding of x = (x₀, x₁, x₂) with K = `pe_octaves` and frequencies f_k = 2^k·π
(π, 2π, 4π, 8π for K = 4):

    PE(x) = [x₀, x₁, x₂,  sin(f₀x₀), sin(f₀x₁), sin(f₀x₂), cos(f₀x₀), cos(f₀x₁), cos(f₀x₂),
             sin(f₁x₀), ..., cos(f_{K-1}x₂)]

The input is included, then per octave the three sines followed by the three cosines; a GLSL
port of the shader has to use this exact order.

Inputs: x in the normalised cube (x_n = (x_world - centre) · scale), n unit normals, ω unit view
directions pointing from the surface point towards the camera.

Files: `save_shader` writes `<stem>.safetensors` (the state dict, float32, nothing else) and
`<stem>.json` (format tag and version, config, normalisation, the weights file's name and
SHA-256). The same files hold DVR's texture field (`recon.methods.dvr_field.DVRTextureShader`,
format tag `reconstruct.dvr_texture`, config a `DVRFieldConfig`); `load_shader` returns whichever
the file holds, both called as f(x, n, ω). No pickle anywhere: `torch.load` is never used, so loading a file cannot run code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from recon.atomic import write_files_atomic
from recon.errors import FileError
from recon.jsonfile import read_json_object
from render.viewer.mlp import MLPWeights, positional_encoding

log = logging.getLogger(__name__)

FORMAT_NAME = "reconstruct.neural_shader"
TEXTURE_FORMAT_NAME = "reconstruct.dvr_texture"  # DVR's position-only texture field (recon.methods.dvr_field)
FORMAT_VERSION = 1
RECORD_KEY = "record"  # the weights file's metadata key holding its own copy of the .json record
MAX_HEADER_BYTES = 1 << 20  # a safetensors header this program writes is a few KB
WEIGHTS_SUFFIX = ".safetensors"
CONFIG_SUFFIX = ".json"

Normalization = tuple[np.ndarray, float]

# Upper bounds of the sizes (16× the paper's widths, 4× its depths): at most ~1.2 GB of weights.
MAXIMUM = {"hidden_h": 4096, "features": 4096, "hidden_c": 4096, "layers_h": 16, "layers_c": 16}


class ShaderFileError(FileError):
    """A saved shader cannot be read: `path` is the file at fault."""


@dataclass(frozen=True)
class ShaderConfig:
    """Sizes of the neural shader; the defaults are the paper's.

    Attributes:
        pe_octaves: K, number of sin/cos frequency pairs (0 = the raw position only).
        hidden_h: width of the hidden layers of h.
        layers_h: number of hidden ReLU layers of h (0 = PE straight into the feature layer).
        features: length of the feature vector h(x).
        hidden_c: width of the hidden layers of c.
        layers_c: number of hidden ReLU layers of c (0 = one linear layer to RGB).
    """

    pe_octaves: int = 4
    hidden_h: int = 256
    layers_h: int = 3
    features: int = 256
    hidden_c: int = 128
    layers_c: int = 2

    def __post_init__(self) -> None:
        minimum = {"pe_octaves": 0, "layers_h": 0, "layers_c": 0, "hidden_h": 1, "features": 1, "hidden_c": 1}
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"shader config: {name} must be an integer, got {value!r}")
            if value < low:
                raise ValueError(f"shader config: {name} must be >= {low}, got {value}")
        if self.pe_octaves > 30:
            raise ValueError(f"shader config: pe_octaves = {self.pe_octaves} is beyond float32 precision (max 30)")
        for name, high in MAXIMUM.items():  # a file's config must not be able to force a huge allocation
            if getattr(self, name) > high:
                raise ValueError(f"shader config: {name} = {getattr(self, name)} is above the maximum {high}")

    def to_dict(self) -> dict[str, int]:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShaderConfig:
        """Inverse of `to_dict`; missing fields take the defaults, unknown ones are an error.

        Raises:
            ValueError: `data` is not a mapping, has unknown keys, or values out of range.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"shader config must be an object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"shader config: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(data))


class PositionalEncoding(nn.Module):
    """x ↦ [x, sin(2^k π x), cos(2^k π x) for k < octaves] (layout in the module docstring).

    The one definition is `render.viewer.mlp.positional_encoding`, shared with the viewer's GLSL
    and CUDA shading paths; this module only holds the octave count. Nothing goes in the state dict.
    """

    def __init__(self, octaves: int) -> None:
        super().__init__()
        self.octaves = octaves

    @property
    def out_dim(self) -> int:
        return 3 * (1 + 2 * self.octaves)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., 3) → (..., 3 + 6·octaves)."""
        return positional_encoding(x, self.octaves)


def _mlp(in_dim: int, width: int, hidden_layers: int, out_dim: int) -> nn.Sequential:
    """`hidden_layers` × (Linear, ReLU) of `width`, then a bare Linear to `out_dim`."""
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(hidden_layers):
        layers += [nn.Linear(dim, width), nn.ReLU()]
        dim = width
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


def _check_last_dim(name: str, t: torch.Tensor, size: int) -> None:
    if t.shape[-1:] != (size,):
        raise ValueError(f"{name} must have shape (..., {size}), got {tuple(t.shape)}")


class NeuralShader(nn.Module):
    """f(x, n, ω) = c(h(x), n, ω) ∈ (0, 1)³; h and c are callable on their own (material editing).

    State-dict keys are `h.<i>.weight|bias` and `c.<i>.weight|bias`, i the index in each
    `nn.Sequential` (ReLUs take the odd indices).
    """

    def __init__(self, config: ShaderConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else ShaderConfig()
        cfg = self.config
        self.encoding = PositionalEncoding(cfg.pe_octaves)
        self.h = _mlp(self.encoding.out_dim, cfg.hidden_h, cfg.layers_h, cfg.features)
        self.c = _mlp(cfg.features + 6, cfg.hidden_c, cfg.layers_c, 3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """h: normalised positions (..., 3) → features (..., features)."""
        _check_last_dim("x", x, 3)
        return self.h(self.encoding(x))

    def color(self, h: torch.Tensor, n: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        """c: features (..., F), unit normals (..., 3), unit view directions (..., 3) → RGB (..., 3).

        Leading dimensions broadcast, so one view direction can serve every point.
        """
        _check_last_dim("h", h, self.config.features)
        _check_last_dim("n", n, 3)
        _check_last_dim("omega", omega, 3)
        lead = torch.broadcast_shapes(h.shape[:-1], n.shape[:-1], omega.shape[:-1])
        # In h's dtype: under bfloat16 autocast (recon.precision) c's first product takes bfloat16
        # anyway, and a float32 concatenation would only be converted again (same values, ~1 ms a CPU step).
        z = torch.cat(
            (h.expand(*lead, h.shape[-1]), n.to(h.dtype).expand(*lead, 3), omega.to(h.dtype).expand(*lead, 3)),
            dim=-1,
        )
        return torch.sigmoid(self.c(z))

    def forward(self, x: torch.Tensor, n: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        """RGB (..., 3) of points x (..., 3) seen along ω with normal n."""
        return self.color(self.features(x), n, omega)

    def mlp_weights(self) -> MLPWeights:
        """Detached float32 CPU copies of the weights for the viewer (`render.viewer`), which can't import recon.

        A snapshot: later training steps don't change it, so it can be handed to another thread.
        """

        def layers(seq: nn.Sequential) -> list[tuple[torch.Tensor, torch.Tensor]]:
            return [
                (m.weight.detach().to("cpu", torch.float32).clone(), m.bias.detach().to("cpu", torch.float32).clone())
                for m in seq
                if isinstance(m, nn.Linear)
            ]

        return MLPWeights(self.config.pe_octaves, layers(self.h), layers(self.c))


def hold_octaves(shader: NeuralShader) -> None:
    """Zero the weights by which h's first layer reads the positional encoding's octaves.

    With `drop_octave_gradients` after every backward until a chosen step, h(x) is a function of
    the raw position until then, and the octaves join from zero afterwards (no jump in the
    colours), the network an ordinary one throughout. Why a session holds them: NDSConfig.pe_from_remesh.
    """
    with torch.no_grad():
        shader.h[0].weight[:, 3:] = 0  # columns 0:3 read the raw position (PositionalEncoding's order)


def drop_octave_gradients(shader: NeuralShader) -> None:
    """Zero the gradient of h's first-layer weights on the octaves, so a step leaves them where they are."""
    grad = shader.h[0].weight.grad
    if grad is not None:
        grad[:, 3:] = 0


# ----------------------------------------------------------------------------- files


def shader_from_config(config: Any) -> nn.Module:
    """A fresh shader for a config: NDS's `NeuralShader` for a `ShaderConfig`, DVR's texture field
    (`recon.methods.dvr_field.DVRTextureShader`, colour t(x), n and ω ignored) for a `DVRFieldConfig`."""
    if isinstance(config, ShaderConfig):
        return NeuralShader(config)
    from recon.methods.dvr_field import DVRFieldConfig, DVRTextureShader

    if isinstance(config, DVRFieldConfig):
        return DVRTextureShader(config)
    raise TypeError(f"no shader for a {type(config).__name__}")


def shader_paths(path: Path | str) -> tuple[Path, Path]:
    """(weights, config) file paths for a stem, or for either file of the pair."""
    path = Path(path)
    if path.suffix in (WEIGHTS_SUFFIX, CONFIG_SUFFIX):
        path = path.with_suffix("")
    return path.with_name(path.name + WEIGHTS_SUFFIX), path.with_name(path.name + CONFIG_SUFFIX)


def _check_normalization(normalization: Normalization) -> tuple[list[float], float]:
    centre, scale = normalization
    c = np.asarray(centre, dtype=np.float64).reshape(-1)
    s = float(scale)
    if c.shape != (3,) or not np.all(np.isfinite(c)):
        raise ValueError(f"normalisation centre must be 3 finite numbers, got {centre!r}")
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"normalisation scale must be a positive finite number, got {scale!r}")
    return c.tolist(), s


def save_shader(shader: NeuralShader, normalization: Normalization, path_stem: Path | str) -> tuple[Path, Path]:
    """Write `<stem>.safetensors` (weights) and `<stem>.json` (config, normalisation); returns both paths.

    `normalization` is (centre (3,), scale) with x_n = (x_world - centre) · scale, as
    `Scene.normalization()` returns it. Both files are written in full before either replaces
    its predecessor (the weights first), and the JSON records their SHA-256. The weights file
    carries its own copy of the record (all but the checksum) in its metadata, so a save killed
    between the two renames leaves weights that `load_shader` can still read (see there).
    """
    centre, scale = _check_normalization(normalization)
    weights_path, config_path = shader_paths(path_stem)
    record: dict[str, Any] = {
        "format": getattr(shader, "FILE_FORMAT", FORMAT_NAME),  # DVR's texture field has its own tag
        "version": FORMAT_VERSION,
        "config": shader.config.to_dict(),
        "positional_encoding": "[x, sin(2^k*pi*x), cos(2^k*pi*x) for k < pe_octaves], per octave 3 sin then 3 cos",
        "normalization": {"centre": centre, "scale": scale, "convention": "x_n = (x_world - centre) * scale"},
    }
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in shader.state_dict().items()}
    # One metadata key: safetensors writes the metadata map in a per-process random order, so with
    # two the same weights gave different bytes (and checksums) in different processes.
    blob = safetensors.torch.save(tensors, metadata={RECORD_KEY: json.dumps(record, sort_keys=True)})
    record["weights"] = {"file": weights_path.name, "sha256": hashlib.sha256(blob).hexdigest()}
    write_files_atomic({weights_path: blob, config_path: (json.dumps(record, indent=2) + "\n").encode("utf-8")})
    log.info("saved shader to %s (+ %s)", weights_path, config_path.name)
    return weights_path, config_path


def _read_record(config_path: Path) -> dict[str, Any]:
    return _check_record(config_path, read_json_object(config_path, ShaderFileError, missing="shader config file not found"))


def _check_record(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    if record.get("format") not in (FORMAT_NAME, TEXTURE_FORMAT_NAME):
        raise ShaderFileError(path, f"not a shader config (expected \"format\": \"{FORMAT_NAME}\")")
    version = record.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ShaderFileError(path, f"unsupported shader format version {version!r} (this build reads 1..{FORMAT_VERSION})")
    return record


def _parse_normalization(config_path: Path, record: dict[str, Any]) -> Normalization:
    norm = record.get("normalization")
    try:
        if not isinstance(norm, dict):
            raise ValueError("missing \"normalization\" object")
        centre, scale = _check_normalization((norm["centre"], norm["scale"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ShaderFileError(config_path, f"bad normalisation: {e}") from e
    return np.asarray(centre, dtype=np.float64), scale


def _checksum(config_path: Path, record: dict[str, Any]) -> str:
    """The weights' SHA-256 the .json records: every file `save_shader` writes has one, so it is required."""
    weights = record.get("weights")
    sha = weights.get("sha256") if isinstance(weights, dict) else None
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ShaderFileError(config_path, "no SHA-256 of the weights (\"weights\": {\"sha256\": …}); not a file this program wrote")
    return sha


def _max_weight_bytes(config: Any) -> int:
    """The largest weights file `config` can have: its model's float32 parameters (counted on the
    meta device, so nothing is allocated) plus a generous header."""
    with torch.device("meta"):
        params = sum(p.numel() for p in shader_from_config(config).parameters())
    return 4 * params + (1 << 20)


def _read_blob(weights_path: Path, max_bytes: int) -> bytes:
    try:
        if weights_path.stat().st_size > max_bytes:
            raise ShaderFileError(weights_path, f"{weights_path.stat().st_size} bytes, more than the config's weights can take")
        return weights_path.read_bytes()
    except FileNotFoundError:
        raise ShaderFileError(weights_path, "shader weights file not found (it must lie beside the .json)") from None
    except OSError as e:
        raise ShaderFileError(weights_path, f"cannot read the shader weights: {e}") from e


def _own_record(weights_path: Path) -> dict[str, Any] | None:
    """The record a weights file carries in its metadata (`save_shader`); None for files written
    before it did, or when the file cannot tell (unreadable: the caller's own error says why)."""
    try:
        with weights_path.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size <= MAX_HEADER_BYTES:
                return None
            header = json.loads(f.read(size))
        own = json.loads(header["__metadata__"][RECORD_KEY])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return _check_record(weights_path, own) if isinstance(own, dict) else None


def _interrupted_save(weights_path: Path, config_path: Path, record: dict[str, Any] | None) -> dict[str, Any]:
    """The weights file's own record, where the .json (`record`, None if missing) is what a save
    killed between its two renames leaves: missing, or agreeing with it in all but the checksum
    (the weights are replaced first, so they are the newer, complete half). Anything else — weights
    from another run, an edited .json, a file written before weights carried their record — is
    refused, naming the file."""
    own = _own_record(weights_path)
    if own is not None and (record is None or {k: v for k, v in record.items() if k != "weights"} == own):
        log.warning("%s: the .json beside it is %s (a save was interrupted); reading the weights with their own record",
                    weights_path, "missing" if record is None else "from the save before")
        return own
    if record is None:
        raise ShaderFileError(config_path, "shader config file not found")
    raise ShaderFileError(weights_path, "weights do not match the checksum in the .json (corrupt, or from another save)")


def _parse_config(path: Path, record: dict[str, Any]) -> Any:
    try:
        if record["format"] == TEXTURE_FORMAT_NAME:
            from recon.methods.dvr_field import DVRFieldConfig

            return DVRFieldConfig.from_dict(record.get("config"))
        return ShaderConfig.from_dict(record.get("config"))
    except (TypeError, ValueError) as e:
        raise ShaderFileError(path, f"bad shader config: {e}") from e


def load_shader(path: Path | str) -> tuple[NeuralShader, Normalization]:
    """Read a shader saved by `save_shader`; `path` is the stem or either file of the pair.

    Returns the shader (on the CPU, eval mode) and (centre (3,) float64, scale).

    Raises:
        ShaderFileError: a file is missing, corrupt, of another format or version, or the
            weights do not fit the recorded config; the message names the file.
    """
    weights_path, config_path = shader_paths(path)
    if config_path.exists() or not weights_path.exists():
        record = _read_record(config_path)
        expected = _checksum(config_path, record)
        config = _parse_config(config_path, record)
        normalization = _parse_normalization(config_path, record)
        blob = _read_blob(weights_path, _max_weight_bytes(config))
        if hashlib.sha256(blob).hexdigest() != expected:
            _interrupted_save(weights_path, config_path, record)  # the same config and normalisation, or an error
    else:
        record = _interrupted_save(weights_path, config_path, None)
        config = _parse_config(weights_path, record)
        normalization = _parse_normalization(weights_path, record)
        blob = _read_blob(weights_path, _max_weight_bytes(config))
    try:
        tensors = safetensors.torch.load(blob)
    except Exception as e:  # safetensors raises its own SafetensorError or a plain exception
        raise ShaderFileError(weights_path, f"not a valid safetensors file ({e})") from e

    shader = shader_from_config(config)
    try:
        shader.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise ShaderFileError(weights_path, f"weights do not fit the config in {config_path.name}: {e}") from e
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise ShaderFileError(weights_path, "weights contain NaN or infinity")
    shader.eval()
    return shader, normalization
