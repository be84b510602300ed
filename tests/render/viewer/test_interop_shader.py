"""InteropShader's CUDA bookkeeping, on any machine, against an emulated cuda-python runtime.

The emulation follows the CUDA runtime's documented rules for graphics interop: a resource
belongs to the device current when it was registered and is unusable from another
(cudaErrorInvalidResourceHandle); mapping a mapped resource fails (cudaErrorAlreadyMapped);
reading the array of, or unmapping, an unmapped one fails (cudaErrorNotMapped); copies must fit
the array. Mapped arrays hold the GL texture's bytes, read at map time and, unless registered
read-only, written back at unmap, as the driver's synchronisation makes them appear. The
shading itself runs on the CPU here; the real path is checked on CUDA by test_interop_path.py.
"""

from __future__ import annotations

import ctypes
from enum import IntEnum
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from render.viewer import FeatureEdits, MLPWeights, shade_reference
from render.viewer.inputs import ShadingInputs
from render.viewer.interop import GL_TEXTURE_2D, InteropShader

pytestmark = pytest.mark.gl


class CudaError(IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorInvalidDevice = 101
    cudaErrorInvalidResourceHandle = 400
    cudaErrorAlreadyMapped = 208
    cudaErrorNotMapped = 211
    cudaErrorUnknown = 999


class FakeCudaRuntime:
    """Enough of `cuda.bindings.runtime` for InteropShader, with the rules in the module doc."""

    cudaMemcpyKind = SimpleNamespace(cudaMemcpyDeviceToDevice=3)

    def __init__(self, textures: list[Any], devices: int = 4, current: int = 3) -> None:
        self.textures = {int(t.glo): t for t in textures}
        self.devices = devices
        self.current = current
        self.registrations = 0
        self.live: dict[int, dict[str, Any]] = {}
        self.fail: dict[str, CudaError] = {}  # call name → error to return once
        self._next = 1

    def _failed(self, name: str) -> CudaError | None:
        return self.fail.pop(name, None)

    def cudaGetErrorName(self, err: CudaError) -> tuple[CudaError, bytes]:  # noqa: N802 - CUDA's names
        return CudaError.cudaSuccess, CudaError(err).name.encode()

    def cudaSetDevice(self, device: int) -> tuple[CudaError]:  # noqa: N802
        if not 0 <= device < self.devices:
            return (CudaError.cudaErrorInvalidDevice,)
        self.current = device
        return (CudaError.cudaSuccess,)

    def cudaGraphicsGLRegisterImage(self, glo: int, target: int, flags: int) -> tuple[CudaError, int]:  # noqa: N802
        if glo not in self.textures or target != GL_TEXTURE_2D or flags not in (0, 1, 2, 4):
            return CudaError.cudaErrorInvalidValue, 0
        handle, self._next = self._next, self._next + 1
        self.live[handle] = dict(glo=glo, flags=flags, device=self.current, mapped=None)
        self.registrations += 1
        return CudaError.cudaSuccess, handle

    def _resource(self, handle: int) -> dict[str, Any] | None:
        res = self.live.get(handle)
        return res if res is not None and res["device"] == self.current else None

    def cudaGraphicsUnregisterResource(self, handle: int) -> tuple[CudaError]:  # noqa: N802
        if self._resource(handle) is None:
            return (CudaError.cudaErrorInvalidResourceHandle,)
        del self.live[handle]
        return (CudaError.cudaSuccess,)

    def cudaGraphicsMapResources(self, count: int, handle: int, stream: int) -> tuple[CudaError]:  # noqa: N802
        res = self._resource(handle)
        if count != 1 or res is None:
            return (CudaError.cudaErrorInvalidResourceHandle,)
        if res["mapped"] is not None:
            return (CudaError.cudaErrorAlreadyMapped,)
        tex = self.textures[res["glo"]]
        res["mapped"] = SimpleNamespace(data=bytearray(tex.read()), row=len(tex.read()) // tex.height, height=tex.height)
        return (CudaError.cudaSuccess,)

    def cudaGraphicsSubResourceGetMappedArray(self, handle: int, index: int, level: int) -> tuple[CudaError, Any]:  # noqa: N802
        res = self._resource(handle)
        if res is None or index or level:
            return CudaError.cudaErrorInvalidResourceHandle, None
        if res["mapped"] is None:
            return CudaError.cudaErrorNotMapped, None
        return CudaError.cudaSuccess, res["mapped"]

    def cudaGraphicsUnmapResources(self, count: int, handle: int, stream: int) -> tuple[CudaError]:  # noqa: N802
        res = self._resource(handle)
        if count != 1 or res is None:
            return (CudaError.cudaErrorInvalidResourceHandle,)
        if res["mapped"] is None:
            return (CudaError.cudaErrorNotMapped,)
        if (err := self._failed("cudaGraphicsUnmapResources")) is not None:
            return (err,)
        if res["flags"] != 1:  # not read-only: CUDA's writes become the texture's content
            self.textures[res["glo"]].write(bytes(res["mapped"].data))
        res["mapped"] = None
        return (CudaError.cudaSuccess,)

    def cudaMemcpy2DFromArrayAsync(self, dst, dpitch, array, w_off, h_off, width, height, kind, stream):  # noqa: N802
        if (err := self._failed("cudaMemcpy2DFromArrayAsync")) is not None:
            return (err,)
        if width > dpitch or w_off + width > array.row or h_off + height > array.height:
            return (CudaError.cudaErrorInvalidValue,)
        buffer = (ctypes.c_char * len(array.data)).from_buffer(array.data)
        for r in range(height):
            ctypes.memmove(dst + r * dpitch, ctypes.addressof(buffer) + (h_off + r) * array.row + w_off, width)
        return (CudaError.cudaSuccess,)

    def cudaMemcpy2DToArrayAsync(self, array, w_off, h_off, src, spitch, width, height, kind, stream):  # noqa: N802
        if (err := self._failed("cudaMemcpy2DToArrayAsync")) is not None:
            return (err,)
        if width > spitch or w_off + width > array.row or h_off + height > array.height:
            return (CudaError.cudaErrorInvalidValue,)
        buffer = (ctypes.c_char * len(array.data)).from_buffer(array.data)
        for r in range(height):
            ctypes.memmove(ctypes.addressof(buffer) + (h_off + r) * array.row + w_off, src + r * spitch, width)
        return (CudaError.cudaSuccess,)

    def mapped(self) -> int:
        return sum(res["mapped"] is not None for res in self.live.values())


def _gbuffer(ctx: Any, size: tuple[int, int], seed: int) -> tuple[tuple[Any, Any, Any], np.ndarray, np.ndarray]:
    """(position, normal, colour) textures filled like the G-buffer pass would, and their arrays."""
    g = np.random.default_rng(seed)
    w, h = size
    position = np.concatenate([g.uniform(-1, 1, (h, w, 3)), (g.uniform(size=(h, w, 1)) < 0.6)], -1).astype(np.float32)
    normal = np.concatenate([g.normal(size=(h, w, 3)), np.zeros((h, w, 1))], -1).astype(np.float32)
    normal[..., :3] /= np.linalg.norm(normal[..., :3], axis=-1, keepdims=True)
    textures = (ctx.texture(size, 4, position.tobytes(), dtype="f4"), ctx.texture(size, 4, normal.tobytes(), dtype="f4"),
                ctx.texture(size, 4, dtype="f1"))  # fmt: skip
    return textures, position, normal


def _reference(weights: MLPWeights, position: np.ndarray, normal: np.ndarray, eye: torch.Tensor) -> np.ndarray:
    covered = position[..., 3] > 0
    x, n = torch.from_numpy(position[covered][:, :3]), torch.from_numpy(normal[covered][:, :3])
    omega = torch.nn.functional.normalize(eye - x, dim=-1)
    return shade_reference(weights, x, n, omega).numpy()


@pytest.fixture
def gbuffers(gl_ctx) -> Any:
    with gl_ctx:  # current on this thread, whatever other tests made current before
        sets = [_gbuffer(gl_ctx, (24, 20), 0), _gbuffer(gl_ctx, (12, 10), 1)]
        yield sets
        for textures, _, _ in sets:
            for tex in textures:
                tex.release()


WEIGHTS = dict(pe_octaves=2, hidden_h=16, layers_h=1, features=6, hidden_c=8, layers_c=1)


@pytest.mark.parametrize("net", ["mlp", "field"])
def test_shades_like_torch_on_its_own_device_and_registers_each_set_once(gbuffers, net) -> None:
    """Switching between full and reduced scale registers nothing new, and a thread whose current
    device changed between frames still maps on the shader's device. A position-only field
    (DVR's structure) goes through the same path."""
    runtime = FakeCudaRuntime([t for textures, _, _ in gbuffers for t in textures])
    shader = InteropShader(torch.device("cpu"), runtime=runtime)
    if net == "mlp":
        weights = MLPWeights.random(**WEIGHTS, seed=3, gain=2.0)
    else:
        weights = MLPWeights.random_field(pe_octaves=1, hidden=12, blocks=2, seed=3, gain=2.0)
    shader.prepare(weights)
    eye = torch.tensor([0.2, -0.3, -3.0])
    for frame in range(6):
        textures, position, normal = gbuffers[frame % 2]
        runtime.current = 2  # e.g. the training thread's device, left current on this thread
        w, h = textures[0].size
        count = shader.shade(textures, (w, h), eye, "neural", ShadingInputs())
        covered = position[..., 3] > 0
        assert count == covered.sum() > 20
        color = np.frombuffer(textures[2].read(), np.uint8).reshape(h, w, 4)
        assert np.abs(color[covered][:, :3] / 255.0 - _reference(weights, position, normal, eye)).max() <= 1 / 255
        assert (color[covered][:, 3] == 255).all() and (color[~covered] == 0).all()
    assert runtime.registrations == 6 and shader.registered_sets == 2 and runtime.mapped() == 0
    shader.unregister(gbuffers[1][0])  # the reduced set is released by the pipeline
    assert shader.registered_sets == 1 and len(runtime.live) == 3
    shader.release()
    assert not runtime.live


def test_a_failing_frame_unmaps_everything_and_raises_its_own_error(gbuffers) -> None:
    """The copy's error is the one raised, not the unmap's that follows it, and no resource stays
    mapped but the one whose unmap failed; the next frame works once that is cleared."""
    textures, position, _ = gbuffers[0]
    runtime = FakeCudaRuntime(list(textures))
    shader = InteropShader(torch.device("cpu"), runtime=runtime)
    shader.prepare(MLPWeights.random(**WEIGHTS, seed=4))
    eye = torch.tensor([0.0, 0.0, -3.0])
    runtime.fail = {"cudaMemcpy2DToArrayAsync": CudaError.cudaErrorUnknown,
                    "cudaGraphicsUnmapResources": CudaError.cudaErrorInvalidValue}  # fmt: skip
    with pytest.raises(RuntimeError, match="cudaMemcpy2DToArrayAsync failed: cudaErrorUnknown"):
        shader.shade(textures, textures[0].size, eye, "neural", ShadingInputs())
    assert runtime.mapped() == 1  # the two others were unmapped after the first unmap failed
    stuck = next(h for h, res in runtime.live.items() if res["mapped"] is not None)
    assert runtime.cudaGraphicsUnmapResources(1, stuck, 0) == (CudaError.cudaSuccess,)
    runtime.fail = {"cudaGraphicsUnmapResources": CudaError.cudaErrorUnknown}
    with pytest.raises(RuntimeError, match="cudaGraphicsUnmapResources failed"):
        shader.shade(textures, textures[0].size, eye, "neural", ShadingInputs())  # a failure of its own shows
    assert runtime.mapped() == 1
    shader.release()


def test_material_decisions_are_made_in_float32(gbuffers) -> None:
    """Half-precision features flip pixels near a material boundary (seen on an H200: 0.1 off),
    so edits and materials mode shade with the float32 weights even when float16 was chosen."""
    textures, _, _ = gbuffers[0]
    shader = InteropShader(torch.device("cpu"), runtime=FakeCudaRuntime(list(textures)))
    shader.prepare(MLPWeights.random(**WEIGHTS, seed=5, gain=0.5))
    assert shader.dtype == torch.float16  # a gentle shader passes the 1/255 probe
    edits = FeatureEdits(
        centroids=torch.randn(2, 6), source=torch.tensor([1]), target=torch.randn(1, 6),
        weight=torch.tensor([0.5]), centre=torch.zeros(1, 3), radius=torch.tensor([float("inf")]),
    )  # fmt: skip
    assert shader.weights_for("neural", None).h_layers[0][0].dtype == torch.float16
    assert shader.weights_for("neural", edits).h_layers[0][0].dtype == torch.float32
    assert shader.weights_for("materials", None).h_layers[0][0].dtype == torch.float32
    shader.release()
