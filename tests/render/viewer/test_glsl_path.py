"""The GLSL compute-shader path against the torch reference, on the very G-buffer it shaded (llvmpipe here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from render.viewer import FeatureEdits, FeatureProjection, MLPWeights, ResidualBlock, ShadingInputs, ViewerPipeline, shade_reference
from render.viewer.glsl_mlp import LLVMPIPE_LOOP_BUDGET, generate_compute_source, loop_iterations

pytestmark = pytest.mark.gl

SMALL = dict(pe_octaves=2, hidden_h=20, layers_h=1, features=7, hidden_c=9, layers_c=1)  # odd sizes: padding
PAPER = dict()  # the paper's 4 octaves, 3×256 → 256 features, 2×128 → RGB


def _shade(scene, weights: MLPWeights, mode: str = "neural", **state):
    """Render with the GLSL path; returns (colour (H, W, 4) uint8, G-buffer inputs, covered mask, stats)."""
    pipe = ViewerPipeline(scene.ctx, sync_stats=True)
    try:
        pipe.set_mesh(scene.vertices, scene.faces)
        pipe.set_shader(weights)
        pipe.set_shading_inputs(ShadingInputs(**state))
        pipe.set_path("glsl")
        stats = pipe.render(scene.camera, scene.size, scene.target, mode=mode)
        color = pipe.read_color()
        position, normal = pipe.read_gbuffer()
    finally:
        pipe.release()
    covered = position[..., 3] > 0
    x = torch.from_numpy(position[covered][:, :3])
    n = torch.from_numpy(normal[covered][:, :3])
    omega = torch.nn.functional.normalize(torch.from_numpy(scene.camera.center.astype(np.float32)) - x, dim=-1)
    return color, (x, n, omega), covered, stats


@pytest.mark.parametrize("config", [SMALL, PAPER], ids=["small", "paper"])
def test_glsl_matches_torch_within_two_levels(scene, config) -> None:
    weights = MLPWeights.random(**config, seed=3, gain=2.5)
    color, (x, n, omega), covered, stats = _shade(scene, weights)
    assert stats.path == "glsl" and stats.covered_pixels == covered.sum() > 100
    reference = shade_reference(weights, x, n, omega).numpy()
    ours = color[covered][:, :3] / 255.0
    assert np.abs(ours - reference).max() <= 2 / 255
    assert (color[covered][:, 3] == 255).all() and (color[~covered] == 0).all()
    assert reference.std(axis=0).max() > 0.02  # a varying image, not a constant that matches by luck


def _mode_inputs(weights: MLPWeights, x: torch.Tensor) -> dict:
    """Projection, centroids and edits built from the shader's own features on the surface."""
    from render.viewer import mlp_features

    h = mlp_features(weights, x)
    g = torch.Generator().manual_seed(1)
    mean = h.mean(0)
    basis = torch.linalg.svd(h - mean, full_matrices=False).Vh[:3]
    comp = (h - mean) @ basis.T
    projection = FeatureProjection(mean, basis, comp.quantile(0.02, dim=0), comp.quantile(0.98, dim=0))
    centroids = h[torch.randperm(len(h), generator=g)[:3]]
    centre = x[len(x) // 2]
    edits = FeatureEdits(
        centroids=centroids,
        source=torch.tensor([0, 1, 2]),
        target=torch.stack([centroids[1], torch.randn(h.shape[1], generator=g), centroids[0]]),
        weight=torch.tensor([1.0, 0.7, 0.5]),
        centre=torch.stack([torch.zeros(3), centre, centre]),
        radius=torch.tensor([float("inf"), 0.15, 0.1]),
    )
    return dict(projection=projection, centroids=centroids, edits=edits, highlight=1)


def _unambiguous(h: torch.Tensor, x: torch.Tensor, state: dict) -> torch.Tensor:
    """Samples whose nearest centroid and edit regions are not decided by rounding."""
    d = torch.cdist(h.double(), state["centroids"].double())
    two = d.topk(2, largest=False).values
    ok = (two[:, 1] - two[:, 0]) > 1e-3
    edits = state["edits"]
    for e in range(edits.count):
        if torch.isfinite(edits.radius[e]):
            ok &= ((x - edits.centre[e]).norm(dim=-1) - edits.radius[e]).abs() > 1e-4
    return ok


FIELD = dict(pe_octaves=1, hidden=10, blocks=2)  # DVR's structure: residual blocks, h = σ(·) is the colour, no c


@pytest.mark.parametrize("net", ["mlp", "field"])
@pytest.mark.parametrize("mode", ["neural", "features", "materials", "material-cells"])
def test_glsl_modes_and_edits_match_torch(scene, mode, net) -> None:
    from render.viewer import mlp_features

    if net == "mlp":
        weights = MLPWeights.random(**SMALL, seed=5, gain=2.5)
    else:
        weights = MLPWeights.random_field(**FIELD, seed=5, gain=2.5)
    # First pass: the G-buffer, to build inputs from the features actually on screen.
    _, (x, _, _), _, _ = _shade(scene, weights, "neural")
    state = _mode_inputs(weights, x)
    if mode == "material-cells":  # centroids as cells of materials, as recon.materials clusters them
        mode, state["cell_material"], state["highlight"] = "materials", torch.tensor([1, 0, 1]), 0
    color, (x, n, omega), covered, _ = _shade(scene, weights, mode, **state)
    kwargs = {k: state.get(k) for k in ("projection", "edits", "centroids", "highlight", "cell_material")}
    reference = shade_reference(weights, x, n, omega, mode, ShadingInputs(**kwargs)).numpy()
    ok = _unambiguous(mlp_features(weights, x), x, state).numpy()
    assert ok.mean() > 0.9
    ours = color[covered][:, :3] / 255.0
    assert np.abs(ours[ok] - reference[ok]).max() <= 2 / 255
    if mode != "materials":  # the edits changed something, so they were applied in GLSL too
        unedited = shade_reference(weights, x, n, omega, mode, ShadingInputs(projection=state["projection"])).numpy()
        assert np.abs(unedited - reference).max(axis=1)[ok].max() > 0.05
    else:
        hues = np.unique(np.round(ours[ok] / np.maximum(ours[ok].max(axis=1, keepdims=True), 1e-6), 2), axis=0)
        assert len(hues) > (1 if "cell_material" in state else 2)


def test_generated_source_follows_the_sizes() -> None:
    small = generate_compute_source(MLPWeights.random(**SMALL))
    paper = generate_compute_source(MLPWeights.random())
    assert "const int F4 = 2;" in small and "const int F4 = 64;" in paper
    assert small.count("sin(angle)") == 2 and paper.count("sin(angle)") == 4
    with pytest.raises(ValueError):
        MLPWeights(2, [(torch.zeros(4, 14), torch.zeros(4))], [(torch.zeros(3, 10), torch.zeros(3))])


def test_generated_source_follows_the_structure_of_a_field() -> None:
    """Residual blocks get a scratch buffer and a skip per block; h ends in a sigmoid whose padding
    lane is zeroed; a position-only net has no c layers, its colour is h."""
    field = generate_compute_source(MLPWeights.random_field(pe_octaves=0, hidden=32, blocks=3))
    mlp = generate_compute_source(MLPWeights.random(**SMALL))
    assert "vec4 act2[40];" in field and "act2" not in mlp
    assert field.count("act0[i] = max(act1[i], vec4(0.0));") == 3  # ReLU(x) copied aside once per block
    assert "for (int o = 0; o < 8 + u_zero; ++o)" in field  # loops the compiler cannot unroll
    assert "for (int i = 0; i < 8 + u_zero; i += 4, k += 16)" in field  # 4 input blocks per iteration
    assert field.count("act1[i] = act1[i] + act0[i];") == 2  # skips; the last one ReLUs for the output layer
    assert field.count("act1[i] = max(act1[i] + act0[i], vec4(0.0));") == 1
    assert "h[o] = 1.0 / (1.0 + exp(-s));" in field and "h[0] *= vec4(1.0, 1.0, 1.0, 0.0);" in field
    assert "vec3 rgb = h[0].xyz;" in field and "act0[F4] = vec4(n, 0.0);" not in field
    assert "h[o] = s;" in mlp and "act0[F4] = vec4(n, 0.0);" in mlp


def _layer(out: int, inp: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(out, inp), torch.zeros(out)


def test_a_field_structure_that_the_paths_cannot_evaluate_is_refused() -> None:
    block = ResidualBlock((_layer(8, 8), _layer(8, 8)))
    MLPWeights(0, [_layer(8, 3), block, _layer(3, 8)], [], h_output="sigmoid")  # fine
    with pytest.raises(ValueError, match="start and end with a layer"):
        MLPWeights(0, [_layer(8, 3), block], [])
    with pytest.raises(ValueError, match="map its width 8 to itself"):
        MLPWeights(0, [_layer(8, 3), ResidualBlock((_layer(6, 8),)), _layer(3, 6)], [])
    with pytest.raises(ValueError, match="needs 3 features"):
        MLPWeights(0, [_layer(8, 3), block, _layer(4, 8)], [])
    with pytest.raises(ValueError, match="h_output"):
        MLPWeights(0, [_layer(3, 3)], [], h_output="tanh")


def test_a_network_beyond_llvmpipes_loop_cap_falls_back_to_the_cpu_path_there(scene) -> None:
    """llvmpipe silently ends every loop after 65535 iterations per invocation: a network that
    needs more is refused with the reason and shaded on the cpu path instead, not shaded wrong."""
    if "llvmpipe" not in str(scene.ctx.info["GL_RENDERER"]).lower():
        pytest.skip(f"the cap is llvmpipe's; this context is {scene.ctx.info['GL_RENDERER']}")
    assert loop_iterations(MLPWeights.random_field(pe_octaves=0, hidden=512, blocks=5)) <= LLVMPIPE_LOOP_BUDGET  # DVR's paper field
    wide = MLPWeights.random(pe_octaves=0, hidden_h=1024, layers_h=5, features=4, hidden_c=4, layers_c=0, seed=2, gain=2.5)
    assert loop_iterations(wide) > LLVMPIPE_LOOP_BUDGET
    pipe = ViewerPipeline(scene.ctx, sync_stats=True)
    try:
        pipe.set_mesh(scene.vertices, scene.faces)
        pipe.set_shader(wide)
        pipe.set_path("glsl")
        assert pipe.render(scene.camera, scene.size, scene.target).path == "cpu"
        assert "glsl" not in pipe.available_paths() and "65535" in pipe.unavailable_reasons()["glsl"]
        color = pipe.read_color()
        position, normal = pipe.read_gbuffer()
    finally:
        pipe.release()
    covered = position[..., 3] > 0
    x, n = torch.from_numpy(position[covered][:, :3]), torch.from_numpy(normal[covered][:, :3])
    omega = torch.nn.functional.normalize(torch.from_numpy(scene.camera.center.astype(np.float32)) - x, dim=-1)
    assert np.abs(color[covered][:, :3] / 255.0 - shade_reference(wide, x, n, omega).numpy()).max() <= 2 / 255
