"""Shader precision: what "auto" picks, and that bfloat16 products stay close to float32 and return float32."""

from __future__ import annotations

import pytest
import torch

from recon.methods.config import ConfigError, NDSConfig
from recon.precision import native_bfloat16, padded_rows, resolve_precision, with_precision
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


def test_padded_rows_are_few_sizes_close_above() -> None:
    sizes = {padded_rows(rows) for rows in range(4097, 8193)}
    assert len(sizes) == 8  # one octave of row counts shares eight shapes, so kernels are reused
    assert all(rows <= padded_rows(rows) < rows + max(64, rows / 8) for rows in range(1, 20000))
    assert padded_rows(0) == 0


def test_bfloat16_shader_sees_padded_rows_and_returns_each_rows_result() -> None:
    """Padding rows must not change any row's colour or any gradient, only the shapes oneDNN sees."""
    torch.manual_seed(0)
    shader = NeuralShader()
    seen: list[int] = []
    shader.h.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[0]))
    fast = with_precision(shader, "bfloat16", CPU)
    x = (torch.rand(2, 1000, 3) - 0.5).requires_grad_()
    n = torch.nn.functional.normalize(torch.randn(2, 1000, 3), dim=-1)
    omega = torch.nn.functional.normalize(torch.randn(3), dim=-1)  # one direction for all: broadcast
    colours = fast(x, n, omega)
    assert colours.shape == (2, 1000, 3) and colours.dtype == torch.float32
    assert seen == [padded_rows(2000)] and padded_rows(2000) > 2000
    colours.square().sum().backward()
    padded_grads = [x.grad.clone(), *(p.grad.clone() for p in shader.parameters())]

    x.grad = None
    shader.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        exact = shader(x, n, omega.expand(2, 1000, 3)).float()
    torch.testing.assert_close(colours, exact, rtol=0, atol=0)
    exact.square().sum().backward()
    for padded, unpadded in zip(padded_grads, [x.grad, *(p.grad for p in shader.parameters())], strict=True):
        torch.testing.assert_close(padded, unpadded, rtol=1e-2, atol=1e-4)
