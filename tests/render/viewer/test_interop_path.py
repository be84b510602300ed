"""The CUDA–GL interop path against the torch reference (CUDA + cuda-python + a GL context on the GPU only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from render.viewer import FeatureEdits, MLPWeights, ShadingInputs, ViewerPipeline, shade_reference
from render.viewer.interop import probe


def _skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "needs CUDA (torch.cuda.is_available() is False)"
    try:
        from render.viewer.interop import _runtime

        _runtime()
    except ImportError as exc:
        return f"needs cuda-python (pip install 'reconstruct[cuda]'): {exc}"
    return None


_SKIP_REASON = _skip_reason()
needs_interop = pytest.mark.skipif(_SKIP_REASON is not None, reason=_SKIP_REASON or "")


def test_probe_explains_why_interop_is_missing() -> None:
    device, reason = probe()
    assert (device is None) == bool(reason)


@needs_interop
@pytest.mark.cuda
@pytest.mark.gl
@pytest.mark.parametrize("net", ["small", "paper", "dvr-field"])
def test_interop_matches_torch(scene, net) -> None:
    pipe = ViewerPipeline(scene.ctx, sync_stats=True)
    try:
        if "interop" not in pipe.available_paths():
            pytest.skip(f"interop unavailable with this GL context: {pipe.unavailable_reasons().get('interop')}")
        weights = {
            "small": lambda: MLPWeights.random(pe_octaves=2, hidden_h=20, layers_h=1, features=7, hidden_c=9, layers_c=1, seed=2, gain=2.5),
            "paper": lambda: MLPWeights.random(seed=2, gain=2.5),
            "dvr-field": lambda: MLPWeights.random_field(pe_octaves=2, hidden=512, blocks=5, seed=2, gain=2.5),  # DVR's paper size
        }[net]()
        pipe.set_mesh(scene.vertices, scene.faces)
        pipe.set_shader(weights)
        pipe.set_path("interop")
        h_dim = weights.features
        edits = FeatureEdits(
            centroids=torch.randn(2, h_dim), source=torch.tensor([1]), target=torch.randn(1, h_dim),
            weight=torch.tensor([0.5]), centre=torch.zeros(1, 3), radius=torch.tensor([float("inf")]),
        )  # fmt: skip
        for state in (None, edits):
            pipe.set_shading_inputs(ShadingInputs(edits=state))
            stats = pipe.render(scene.camera, scene.size, scene.target, mode="neural")
            assert stats.path == "interop"
            color = pipe.read_color()
            position, normal = pipe.read_gbuffer()
            covered = position[..., 3] > 0
            assert stats.covered_pixels == covered.sum() > 100
            x = torch.from_numpy(position[covered][:, :3])
            n = torch.from_numpy(normal[covered][:, :3])
            omega = torch.nn.functional.normalize(torch.from_numpy(scene.camera.center.astype(np.float32)) - x, dim=-1)
            reference = shade_reference(weights, x, n, omega, inputs=ShadingInputs(edits=state)).numpy()
            # Half precision is used only where it stays within 1/255; plus rounding to 8 bits.
            assert np.abs(color[covered][:, :3] / 255.0 - reference).max() <= 2 / 255
            assert (color[~covered] == 0).all()
        pipe.set_path("glsl")  # switching unregisters the textures from CUDA
        pipe.render(scene.camera, scene.size, scene.target, mode="neural")
    finally:
        pipe.release()


@needs_interop
@pytest.mark.cuda
@pytest.mark.gl
def test_interop_resources_are_created_and_destroyed_fifty_times_without_leaks(scene) -> None:
    """Each pipeline registers its two target sets (full and reduced scale) once, shades on the
    viewer's stream (not torch's default one; the same for every pipeline, since torch keeps a
    cuBLAS workspace per stream forever) and leaves no CUDA memory behind when released."""
    weights = MLPWeights.random(pe_octaves=1, hidden_h=8, layers_h=1, features=4, hidden_c=8, layers_c=1)
    allocated, streams = [], set()
    for i in range(50):
        pipe = ViewerPipeline(scene.ctx, sync_stats=True)
        try:
            if "interop" not in pipe.available_paths():
                pytest.skip(f"interop unavailable with this GL context: {pipe.unavailable_reasons().get('interop')}")
            pipe.set_mesh(scene.vertices, scene.faces)
            pipe.set_shader(weights)
            pipe.set_path("interop")
            for scale in (1.0, 0.5, 1.0, 0.5):
                assert pipe.render(scene.camera, scene.size, scene.target, mode="neural", scale=scale).path == "interop"
            shader = pipe.interop_shader
            assert shader is not None and shader.registered_sets == 2
            assert shader.stream is not None and shader.stream != torch.cuda.default_stream(shader.device)
            streams.add(shader.stream.cuda_stream)
        finally:
            pipe.release()
        torch.cuda.synchronize()
        allocated.append(torch.cuda.memory_allocated())
    assert len(streams) == 1
    assert allocated[-1] <= allocated[4] + 2**20, allocated
