"""NeuralShader.mlp_weights(): the viewer's plain-tensor MLP evaluates exactly like the nn.Module."""

from __future__ import annotations

import pytest
import torch

from recon.shader import NeuralShader, PositionalEncoding, ShaderConfig
from render.viewer import mlp_color, mlp_features, positional_encoding


@pytest.mark.parametrize(
    "config",
    [ShaderConfig(), ShaderConfig(pe_octaves=0, hidden_h=8, layers_h=0, features=5, hidden_c=4, layers_c=0)],
    ids=["paper", "minimal"],
)
def test_mlp_weights_evaluate_like_the_module(config: ShaderConfig) -> None:
    torch.manual_seed(0)
    shader = NeuralShader(config)
    weights = shader.mlp_weights()
    x = torch.rand(500, 3) * 2 - 1
    n = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1)
    omega = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1)
    with torch.no_grad():
        h = shader.features(x)
        assert torch.equal(mlp_features(weights, x), h)
        assert torch.equal(mlp_color(weights, h, n, omega), shader.color(h, n, omega))
        assert torch.equal(mlp_color(weights, h, n, omega[:1]), shader.color(h, n, omega[:1]))  # broadcast
    # A snapshot: training the module afterwards leaves it alone.
    before = weights.h_layers[0][0].clone()
    with torch.no_grad():
        shader.h[0].weight.add_(1.0)
    assert torch.equal(weights.h_layers[0][0], before)


def test_positional_encoding_has_one_definition() -> None:
    x = torch.rand(7, 3)
    assert torch.equal(PositionalEncoding(4)(x), positional_encoding(x, 4))
    assert positional_encoding(x, 2)[:, 3:6].allclose(torch.sin(torch.pi * x))
    assert positional_encoding(x, 2)[:, 12:15].allclose(torch.cos(2 * torch.pi * x))
    assert NeuralShader().state_dict().keys() == {f"{p}.{i}.{k}" for p, idx in (("h", (0, 2, 4, 6)), ("c", (0, 2, 4))) for i in idx for k in ("weight", "bias")}
