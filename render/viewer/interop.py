"""CUDA–GL interop shading path: the G-buffer textures are mapped into CUDA and shaded by torch on the GPU.

Through `cuda-python`'s runtime bindings (`pip install 'reconstruct[cuda]'`; no source build):
textures are registered once per render-target set (`cudaGraphicsGLRegisterImage`: the position
and normal textures read-only, the colour texture write-discard), and every frame maps them
(`cudaGraphicsMapResources`, which orders the GL work issued before it), copies the mapped arrays
device-to-device into torch tensors on the viewer's own stream, shades the covered pixels, copies
the result into the colour array and unmaps (all of them, even when one step fails, and the first
error is the one raised). Nothing goes through the CPU.

Precision: the MLP runs in float16 when its error against float32 on probe samples stays below
1/255 (checked per shader in `prepare`), else float32; frames that assign materials by nearest
centroid (materials mode, feature edits) always run in float32. TF32 is not used: its switch is
process-global in torch and would also change the training thread's matmuls.

Requirements, each checked by `probe` with a reason when missing: torch with CUDA, cuda-python,
and the GL context current on this thread running on a CUDA device (`cudaGLGetDevices`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from render.viewer.features import FeatureEdits
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


_STREAMS: dict[torch.device, torch.cuda.Stream] = {}


def _viewer_stream(device: torch.device) -> torch.cuda.Stream:
    """The one stream per device that viewer frames run on, shared by every pipeline.

    One, not one per pipeline: torch keeps a cuBLAS workspace (32 MiB on Hopper) for each stream
    that ever ran a matmul and never frees it, so a stream per pipeline leaked 33 MiB each.
    """
    key = torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
    if key not in _STREAMS:
        _STREAMS[key] = torch.cuda.Stream(key)
    return _STREAMS[key]


class InteropShader:
    """Per-pipeline CUDA state: registered textures, the GPU copy of the weights, the chosen precision.

    Frames run on the viewer's stream (one per device), so they never queue behind a training
    thread's kernels on torch's default stream, and with both torch and cuda-python's runtime on `device` (the GL
    context's), whatever device the calling thread had current. Each render-target set is
    registered once, so switching between full and reduced scale registers nothing.
    All methods need the pipeline's GL context current on the calling thread.

    Args:
        device: the CUDA device of the GL context (`probe`).
        runtime: cuda-python's runtime module; another object with its API (tests) may stand in.
    """

    def __init__(self, device: torch.device, runtime: Any = None) -> None:
        self.rt = runtime if runtime is not None else _runtime()
        self.device = device
        self.dtype = torch.float32
        self._ordinal = int(device.index) if device.index is not None else (
            torch.cuda.current_device() if device.type == "cuda" else 0
        )
        self.stream = _viewer_stream(device) if device.type == "cuda" else None
        self._weights: MLPWeights | None = None
        self._weights_full: MLPWeights | None = None
        self._weights_source: MLPWeights | None = None
        self._registered: dict[tuple[int, ...], list[Any]] = {}

    @contextmanager
    def _on_device(self) -> Iterator[int]:
        """torch and cuda-python's runtime on this shader's device and stream; yields the stream handle."""
        if self.stream is None:
            _check(self.rt, self.rt.cudaSetDevice(self._ordinal), "cudaSetDevice")
            yield 0
            return
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            _check(self.rt, self.rt.cudaSetDevice(self._ordinal), "cudaSetDevice")
            yield self.stream.cuda_stream

    # -- setup ------------------------------------------------------------------------------

    def prepare(self, weights: MLPWeights) -> None:
        """Copy the weights to the GPU, choosing float16 when it stays within 1/255 of float32."""
        if weights is self._weights_source:
            return
        with self._on_device(), torch.inference_mode():
            full = weights.to(self.device, torch.float32)
            g = torch.Generator(device="cpu").manual_seed(0)
            x = torch.rand(_PROBE_SAMPLES, 3, generator=g).mul_(2).sub_(1).to(self.device)
            n = torch.nn.functional.normalize(torch.randn(_PROBE_SAMPLES, 3, generator=g), dim=-1).to(self.device)
            reference = mlp_color(full, mlp_features(full, x), n, n)
            half = full.to(dtype=torch.float16)
            error = float((mlp_color(half, mlp_features(half, x), n, n) - reference).abs().max())
        self.dtype = torch.float16 if error < _HALF_TOLERANCE else torch.float32
        self._weights = half if self.dtype == torch.float16 else full
        self._weights_full = full
        self._weights_source = weights
        log.info("CUDA interop shading in %s (float16 error %.2f/255)", self.dtype, error * 255)

    @staticmethod
    def _key(textures: tuple[Any, Any, Any]) -> tuple[int, ...]:
        return tuple(int(t.glo) for t in textures)

    def register(self, textures: tuple[Any, Any, Any]) -> None:
        """Register (position, normal, colour) moderngl textures, once per set."""
        key = self._key(textures)
        if key in self._registered:
            return
        flags = (_REGISTER_READ_ONLY, _REGISTER_READ_ONLY, _REGISTER_WRITE_DISCARD)
        resources: list[Any] = []
        with self._on_device():
            try:
                for tex, flag in zip(textures, flags):
                    resources.append(_check(
                        self.rt, self.rt.cudaGraphicsGLRegisterImage(int(tex.glo), GL_TEXTURE_2D, flag), "cudaGraphicsGLRegisterImage"
                    ))  # fmt: skip
            except BaseException:
                self._unregister_all(resources)
                raise
        self._registered[key] = resources

    def unregister(self, textures: tuple[Any, Any, Any] | None = None) -> None:
        """Unregister one texture set (before it is released), or every set when None."""
        keys = list(self._registered) if textures is None else [self._key(textures)]
        with self._on_device():
            for key in keys:
                self._unregister_all(self._registered.pop(key, []))

    def _unregister_all(self, resources: list[Any]) -> None:
        for resource in resources:
            try:
                _check(self.rt, self.rt.cudaGraphicsUnregisterResource(resource), "cudaGraphicsUnregisterResource")
            except RuntimeError as exc:
                log.warning("%s", exc)

    @property
    def registered_sets(self) -> int:
        """How many render-target sets are registered with CUDA now."""
        return len(self._registered)

    def release(self) -> None:
        self.unregister()
        self._weights = self._weights_full = self._weights_source = None

    def weights_for(self, mode: str, edits: FeatureEdits | None) -> MLPWeights:
        """The weights a frame shades with: float32 whenever a nearest-centroid decision is made
        (materials mode, edits), since float16 features flip pixels near a boundary to another
        material (up to 0.1 off, seen on an H200); else the precision `prepare` chose."""
        if self._weights is None or self._weights_full is None:
            raise RuntimeError("InteropShader.shade before prepare")
        return self._weights_full if mode == "materials" or edits is not None else self._weights

    # -- per frame --------------------------------------------------------------------------

    def shade(
        self,
        textures: tuple[Any, Any, Any],
        size: tuple[int, int],
        eye: torch.Tensor,
        mode: str,
        inputs: ShadingInputs,
    ) -> int:
        """Shade the G-buffer (position, normal, colour) textures of `size` (w, h) into the colour
        texture, registering them on first use; returns the covered pixels."""
        if self._weights is None:
            raise RuntimeError("InteropShader.shade before prepare")
        self.register(textures)
        resources = self._registered[self._key(textures)]
        rt, width, height = self.rt, size[0], size[1]
        kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        with self._on_device() as handle:
            mapped: list[Any] = []
            try:
                for resource in resources:  # one at a time: the bindings' list handling varies by version
                    _check(rt, rt.cudaGraphicsMapResources(1, resource, handle), "cudaGraphicsMapResources")
                    mapped.append(resource)
                count = self._shade_mapped(resources, width, height, handle, kind, eye, mode, inputs)
            except BaseException:
                self._unmap(mapped, handle, raise_first=False)  # the original error is the one to see
                raise
            self._unmap(mapped, handle, raise_first=True)
        return count

    def _unmap(self, mapped: list[Any], handle: int, raise_first: bool) -> None:
        """Unmap every mapped resource even when one fails; then raise the first failure if asked."""
        first: RuntimeError | None = None
        for resource in reversed(mapped):
            try:
                _check(self.rt, self.rt.cudaGraphicsUnmapResources(1, resource, handle), "cudaGraphicsUnmapResources")
            except RuntimeError as exc:
                log.error("%s", exc)
                first = first or exc
        if raise_first and first is not None:
            raise first

    def _shade_mapped(
        self,
        resources: list[Any],
        width: int,
        height: int,
        handle: int,
        kind: Any,
        eye: torch.Tensor,
        mode: str,
        inputs: ShadingInputs,
    ) -> int:
        """Copy the mapped G-buffer into torch, shade the covered pixels, copy the colour back."""
        rt = self.rt
        arrays = [
            _check(rt, rt.cudaGraphicsSubResourceGetMappedArray(r, 0, 0), "cudaGraphicsSubResourceGetMappedArray")
            for r in resources
        ]
        with torch.inference_mode():
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
            rgb = shade_reference(self.weights_for(mode, inputs.edits), x, n, omega, mode, inputs)
            color = torch.zeros((height * width, 4), dtype=torch.uint8, device=self.device)
            color[index, :3] = (rgb.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8)
            color[index, 3] = 255
            _check(rt, rt.cudaMemcpy2DToArrayAsync(
                arrays[2], 0, 0, color.data_ptr(), width * 4, width * 4, height, kind, handle), "cudaMemcpy2DToArrayAsync")
            if self.stream is not None:
                self.stream.synchronize()  # `color` must outlive the asynchronous copy out of it
            return int(index.shape[0])
