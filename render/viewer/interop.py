"""CUDA–GL interop shading path: the G-buffer textures are mapped into CUDA and shaded by torch on the GPU.

Through `cuda-python`'s runtime bindings (`pip install 'reconstruct[cuda]'`; no source build):
textures are registered once per render-target size (`cudaGraphicsGLRegisterImage`: the position
and normal textures read-only, the colour texture write-discard), and every frame maps them
(`cudaGraphicsMapResources`, which orders the GL work issued before it), copies the mapped arrays
device-to-device into torch tensors on torch's current stream, shades the covered pixels, copies
the result into the colour array and unmaps. Nothing goes through the CPU.

Precision: the MLP runs in float16 when its error against float32 on probe samples stays below
1/255 (checked per shader in `prepare`), else float32. TF32 is not used: its switch is
process-global in torch and would also change the training thread's matmuls.

Requirements, each checked by `probe` with a reason when missing: torch with CUDA, cuda-python,
and the GL context current on this thread running on a CUDA device (`cudaGLGetDevices`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from render.viewer.inputs import ShadingInputs
from render.viewer.mlp import MLPWeights, mlp_color, mlp_features, shade_reference

log = logging.getLogger(__name__)

GL_TEXTURE_2D = 0x0DE1
_REGISTER_READ_ONLY = 1
_REGISTER_WRITE_DISCARD = 2
_PROBE_SAMPLES = 16_384
_HALF_TOLERANCE = 1.0 / 255.0


def _runtime() -> Any:
    """cuda-python's runtime module (new layout first, then the pre-12.6 one)."""
    try:
        from cuda.bindings import runtime  # type: ignore[import-not-found]
    except ImportError:
        from cuda import cudart as runtime  # type: ignore[import-not-found, no-redef]
    return runtime


def _check(rt: Any, result: Any, what: str) -> Any:
    """Unpack a cuda-python result tuple (error first); raise RuntimeError naming the call on error."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        name = rt.cudaGetErrorName(err)[1]
        raise RuntimeError(f"{what} failed: {name.decode() if isinstance(name, bytes) else name}")
    return values[0] if len(values) == 1 else tuple(values)


def probe() -> tuple[torch.device | None, str]:
    """(CUDA device of the current GL context, "") when interop can work here, else (None, reason).

    Must be called with the GL context current.
    """
    if not torch.cuda.is_available():
        return None, "torch has no CUDA device"
    try:
        rt = _runtime()
    except ImportError as exc:
        return None, f"cuda-python is not installed (pip install 'reconstruct[cuda]'): {exc}"
    try:
        count, devices = _check(rt, rt.cudaGLGetDevices(16, rt.cudaGLDeviceList.cudaGLDeviceListAll), "cudaGLGetDevices")
    except Exception as exc:  # the driver says no (e.g. a Mesa context), or the binding differs
        return None, f"the GL context is not on a CUDA device ({exc})"
    gl_devices = [int(d) for d in list(devices)[: int(count)]]
    if not gl_devices:
        return None, "the GL context is not on a CUDA device"
    current = torch.cuda.current_device()
    device = current if current in gl_devices else gl_devices[0]
    return torch.device("cuda", device), ""


class InteropShader:
    """Per-pipeline CUDA state: registered textures, the GPU copy of the weights, the chosen precision.

    All methods need the pipeline's GL context current on the calling thread.
    """

    def __init__(self, device: torch.device) -> None:
        self.rt = _runtime()
        self.device = device
        self.dtype = torch.float32
        self._weights: MLPWeights | None = None
        self._weights_source: MLPWeights | None = None
        self._resources: list[Any] = []
        self._registered_for: tuple[int, ...] | None = None

    # -- setup ------------------------------------------------------------------------------

    def prepare(self, weights: MLPWeights) -> None:
        """Copy the weights to the GPU, choosing float16 when it stays within 1/255 of float32."""
        if weights is self._weights_source:
            return
        full = weights.to(self.device, torch.float32)
        with torch.inference_mode():
            g = torch.Generator(device="cpu").manual_seed(0)
            x = torch.rand(_PROBE_SAMPLES, 3, generator=g).mul_(2).sub_(1).to(self.device)
            n = torch.nn.functional.normalize(torch.randn(_PROBE_SAMPLES, 3, generator=g), dim=-1).to(self.device)
            reference = mlp_color(full, mlp_features(full, x), n, n)
            half = full.to(dtype=torch.float16)
            error = float((mlp_color(half, mlp_features(half, x), n, n) - reference).abs().max())
        self.dtype = torch.float16 if error < _HALF_TOLERANCE else torch.float32
        self._weights = half if self.dtype == torch.float16 else full
        self._weights_source = weights
        log.info("CUDA interop shading in %s (float16 error %.2f/255)", self.dtype, error * 255)

    def register(self, textures: tuple[Any, Any, Any]) -> None:
        """Register (position, normal, colour) moderngl textures; again only when they changed."""
        key = tuple(int(t.glo) for t in textures)
        if key == self._registered_for:
            return
        self.unregister()
        flags = (_REGISTER_READ_ONLY, _REGISTER_READ_ONLY, _REGISTER_WRITE_DISCARD)
        for tex, flag in zip(textures, flags):
            self._resources.append(
                _check(self.rt, self.rt.cudaGraphicsGLRegisterImage(int(tex.glo), GL_TEXTURE_2D, flag), "cudaGraphicsGLRegisterImage")
            )
        self._registered_for = key

    def unregister(self) -> None:
        """Unregister every texture (before they are released or resized)."""
        for resource in self._resources:
            try:
                _check(self.rt, self.rt.cudaGraphicsUnregisterResource(resource), "cudaGraphicsUnregisterResource")
            except RuntimeError as exc:
                log.warning("%s", exc)
        self._resources = []
        self._registered_for = None

    def release(self) -> None:
        self.unregister()
        self._weights = self._weights_source = None

    # -- per frame --------------------------------------------------------------------------

    def shade(
        self,
        size: tuple[int, int],
        eye: torch.Tensor,
        mode: str,
        inputs: ShadingInputs,
    ) -> int:
        """Shade the registered G-buffer of `size` (w, h) into its colour texture; returns covered pixels."""
        if self._weights is None or len(self._resources) != 3:
            raise RuntimeError("InteropShader.shade before prepare/register")
        rt, width, height = self.rt, size[0], size[1]
        stream = torch.cuda.current_stream(self.device)
        handle = stream.cuda_stream
        kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        mapped: list[Any] = []
        try:
            for resource in self._resources:  # one at a time: the bindings' list handling varies by version
                _check(rt, rt.cudaGraphicsMapResources(1, resource, handle), "cudaGraphicsMapResources")
                mapped.append(resource)
            arrays = [
                _check(rt, rt.cudaGraphicsSubResourceGetMappedArray(r, 0, 0), "cudaGraphicsSubResourceGetMappedArray")
                for r in self._resources
            ]
            with torch.cuda.device(self.device), torch.inference_mode():
                gbuffer = torch.empty((2, height, width, 4), dtype=torch.float32, device=self.device)
                row = width * 16
                for i in range(2):
                    _check(rt, rt.cudaMemcpy2DFromArrayAsync(
                        gbuffer[i].data_ptr(), row, arrays[i], 0, 0, row, height, kind, handle), "cudaMemcpy2DFromArrayAsync")
                covered = gbuffer[0, ..., 3] > 0
                index = covered.flatten().nonzero().squeeze(1)
                x = gbuffer[0].reshape(-1, 4)[index, :3]
                n = gbuffer[1].reshape(-1, 4)[index, :3]
                omega = torch.nn.functional.normalize(eye.to(self.device) - x, dim=-1)
                rgb = shade_reference(self._weights, x, n, omega, mode, inputs)
                color = torch.zeros((height * width, 4), dtype=torch.uint8, device=self.device)
                color[index, :3] = (rgb.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8)
                color[index, 3] = 255
                _check(rt, rt.cudaMemcpy2DToArrayAsync(
                    arrays[2], 0, 0, color.data_ptr(), width * 4, width * 4, height, kind, handle), "cudaMemcpy2DToArrayAsync")
                count = int(index.shape[0])
        finally:
            for resource in reversed(mapped):
                _check(rt, rt.cudaGraphicsUnmapResources(1, resource, handle), "cudaGraphicsUnmapResources")
        return count
