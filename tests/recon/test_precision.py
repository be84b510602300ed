"""Shader precision: what "auto" picks, and that bfloat16 products stay close to float32 and return float32."""

from __future__ import annotations

import pytest
import torch

from recon.methods.config import ConfigError, NDSConfig
from recon.precision import native_bfloat16, resolve_precision, with_precision
from recon.shader import NeuralShader

CPU = torch.device("cpu")


def test_auto_follows_the_hardware() -> None:
    expected = "bfloat16" if native_bfloat16() else "float32"
    assert resolve_precision("auto", CPU) == expected
    assert resolve_precision("float32", CPU) == "float32"
    assert resolve_precision("bfloat16", CPU) == "bfloat16"
    with pytest.raises(ValueError, match="float16"):
        resolve_precision("float16", CPU)


def test_bad_setting_is_refused_by_the_config() -> None:
    with pytest.raises(ConfigError, match="shader_precision"):
        NDSConfig(shader_precision="half")


def test_bfloat16_shader_is_close_and_returns_float32() -> None:
    torch.manual_seed(0)
    shader = NeuralShader()
    x = torch.rand(500, 3) - 0.5
    n = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1)
    exact = shader(x, n, n)
    fast = with_precision(shader, "bfloat16", CPU)
    assert with_precision(shader, "float32", CPU) is shader
    approx = fast(x, n, n)
    assert approx.dtype == torch.float32
    assert (approx - exact).abs().max() < 0.02  # bfloat16 keeps 8 bits: colours within ~1/50
    assert (approx - exact).abs().max() > 0  # the products really ran in bfloat16
    approx.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in shader.parameters())
