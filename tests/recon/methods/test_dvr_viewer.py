"""DVR's texture field in the viewer: `DVRTextureShader.mlp_weights()` on the CPU and GLSL shading
paths, against the torch module itself (real EGL context, llvmpipe here), within 2/255."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import trimesh

from recon.methods.dvr_field import DVRFieldConfig, DVRTextureShader
from render.camera import Camera
from render.viewer import MLPWeights, ViewerPipeline, mlp_color, mlp_features, positional_encoding

SIZE = (64, 56)
CONFIGS = {
    "2x32": DVRFieldConfig(hidden=32, blocks=2, pe_octaves=0),
    "2x32-pe3": DVRFieldConfig(hidden=32, blocks=2, pe_octaves=3),
    "no-blocks-pe1": DVRFieldConfig(hidden=12, blocks=0, pe_octaves=1),
    "paper-5x512": DVRFieldConfig(),  # ~44K loop iterations per pixel: under llvmpipe's cap only in blocks of 4
}


def _random_field(config: DVRFieldConfig, seed: int = 0, gain: float = 2.0) -> DVRTextureShader:
    """Every weight redrawn in ±gain/√fan_in: the blocks' second layers are not left at their zero
    start, so a dropped skip or a misplaced ReLU changes the colours."""
    shader = DVRTextureShader(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in shader.modules():
            if isinstance(m, torch.nn.Linear):
                bound = gain / math.sqrt(m.in_features)
                m.weight.copy_((torch.rand(m.weight.shape, generator=g) * 2 - 1) * bound)
                m.bias.copy_((torch.rand(m.bias.shape, generator=g) * 2 - 1) * bound)
    return shader.eval()


@pytest.mark.parametrize("name", CONFIGS)
def test_viewer_weights_evaluate_like_the_module(name: str) -> None:
    shader = _random_field(CONFIGS[name])
    weights = shader.mlp_weights()
    assert weights.position_only and weights.features == 3
    x = torch.rand(2000, 3) * 2 - 1
    n = torch.nn.functional.normalize(torch.randn(2000, 3), dim=-1)
    with torch.no_grad():
        t = shader.features(x)
        assert (mlp_features(weights, x) - t).abs().max() < 1e-6  # fc_out's 3 rows vs 4 rows sliced: not bitwise
        assert torch.equal(mlp_color(weights, t, n, n[:1]), shader.color(t, n, n[:1]))
    before = weights.h_layers[1].layers[1][0].clone() if CONFIGS[name].blocks else None
    with torch.no_grad():
        for p in shader.parameters():
            p.add_(1.0)
    if before is not None:  # a snapshot: training afterwards leaves it alone
        assert torch.equal(weights.h_layers[1].layers[1][0], before)


# ---- on the viewer's paths ----------------------------------------------------------------------


class _Viewer:
    """An off-centre sphere seen obliquely, an offscreen target and a pipeline on one EGL context."""

    def __init__(self, ctx: Any) -> None:
        sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
        self.vertices = (np.asarray(sphere.vertices) + [0.35, -0.25, 0.1]).astype(np.float32)
        self.faces = np.asarray(sphere.faces)
        self.camera = Camera.look_at(
            np.array([0.2, -0.6, -2.2]), np.array([0.05, -0.05, 0.0]), np.array([0.0, -1.0, 0.0]), 28.0, *SIZE
        )
        self.texture = ctx.texture(SIZE, 4)
        self.target = ctx.framebuffer([self.texture])
        self.pipe = ViewerPipeline(ctx, sync_stats=True)
        self.pipe.set_mesh(self.vertices, self.faces)

    def shade(self, weights: MLPWeights, path: str) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
        """(RGB in [0, 1] of the covered pixels, their points x, covered mask) from `path`."""
        self.pipe.set_shader(weights)
        self.pipe.set_path(path)
        stats = self.pipe.render(self.camera, SIZE, self.target, mode="neural")
        assert stats.path == path
        color = self.pipe.read_color()
        position, _ = self.pipe.read_gbuffer()
        covered = position[..., 3] > 0
        assert (color[covered][:, 3] == 255).all() and (color[~covered] == 0).all()
        return color[covered][:, :3] / 255.0, torch.from_numpy(position[covered][:, :3]), covered

    def release(self) -> None:
        self.pipe.release()
        self.target.release()
        self.texture.release()


@pytest.fixture(scope="module")
def viewer() -> Iterator[_Viewer]:
    import moderngl

    ctx = moderngl.create_standalone_context(backend="egl", require=430)
    with ctx:
        v = _Viewer(ctx)
        yield v
        v.release()
    ctx.release()


def _torch_colors(shader: DVRTextureShader, x: torch.Tensor, camera: Camera) -> np.ndarray:
    """What the module says: t(x), given any n and ω (it ignores them)."""
    omega = torch.nn.functional.normalize(torch.from_numpy(camera.center.astype(np.float32)) - x, dim=-1)
    with torch.no_grad():
        return shader(x, omega, omega).numpy()


@pytest.mark.gl
@pytest.mark.parametrize("path", ["glsl", "cpu"])
@pytest.mark.parametrize("name", CONFIGS)
def test_a_dvr_field_on_the_viewer_paths_matches_the_module(viewer: _Viewer, path: str, name: str) -> None:
    shader = _random_field(CONFIGS[name], seed=1)
    ours, x, covered = viewer.shade(shader.mlp_weights(), path)
    reference = _torch_colors(shader, x, viewer.camera)
    assert covered.sum() > 500
    assert np.abs(ours - reference).max() <= 2 / 255
    assert reference.std(axis=0).max() > 0.03  # a varying image, not a constant that matches by luck


def _plain_chain(weights: MLPWeights) -> MLPWeights:
    """The same layers with every residual skip dropped (ReLU between all of them)."""
    layers = [layer for stage in weights.h_layers for layer in getattr(stage, "layers", (stage,))]
    return MLPWeights(weights.pe_octaves, layers, [], h_output="sigmoid")


@pytest.mark.gl
def test_the_comparison_catches_a_dropped_skip_or_a_wrong_activation(viewer: _Viewer) -> None:
    """Networks one mistake away from the field (rendered by the GLSL path, or evaluated in torch)
    are far beyond 2/255 of the module, so the match above rules those mistakes out."""
    shader = _random_field(CONFIGS["2x32-pe3"], seed=1)
    weights = shader.mlp_weights()
    ours, x, _ = viewer.shade(_plain_chain(weights), "glsl")
    reference = _torch_colors(shader, x, viewer.camera)
    assert np.abs(ours - reference).max() > 10 / 255  # no skip
    no_sigmoid = MLPWeights(weights.pe_octaves, weights.h_layers, [], h_output="linear")
    ours, _, _ = viewer.shade(no_sigmoid, "glsl")
    assert np.abs(ours - reference).max() > 10 / 255  # clamped logits instead of σ
    field = shader.field
    with torch.no_grad():  # the blocks' first ReLU left out: z + fc1(ReLU(fc0(z)))
        z = field.fc_in(positional_encoding(x, field.config.pe_octaves))
        for block in field.blocks:
            z = z + block.fc1(torch.relu(block.fc0(z)))
        no_block_relu = torch.sigmoid(field.fc_out(torch.relu(z))[:, 1:]).numpy()
    assert np.abs(no_block_relu - reference).max() > 10 / 255
