"""Which neural shading path the viewer uses: probing what this context allows, switching, falling back.

"interop" (CUDA maps the GL textures, torch on the GPU) needs torch CUDA, cuda-python and the GL
context on the CUDA device; "glsl" (the MLP as a generated compute shader) needs OpenGL 4.3;
"cpu" always works. A path that fails at run time (driver bug, compile error) is dropped and the
next one used, so a GUI never dies of a shading path.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from render.camera import Camera
from render.viewer import interop as interop_module
from render.viewer.glsl_mlp import GLSLShader
from render.viewer.inputs import ShadingInputs
from render.viewer.mlp import MLPWeights
from render.viewer.targets import RenderTargets

log = logging.getLogger(__name__)

PATHS = ("interop", "glsl", "cpu")
_SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software")


class ShadingPaths:
    """The available paths (fastest first), the one in use, and the GPU paths' shaders."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._glsl: GLSLShader | None = None
        self._glsl_dirty = True
        self._interop: interop_module.InteropShader | None = None
        self._interop_device: torch.device | None = None
        self._unavailable: dict[str, str] = {}
        self._available = self._probe()
        self.current = self._available[0]

    def _probe(self) -> list[str]:
        """Usable paths, fastest first. On a software GL (llvmpipe) "cpu" comes before "glsl":
        torch's batched matmuls beat per-pixel compute-shader loops there."""
        paths = []
        device, reason = interop_module.probe()
        if device is not None:
            paths.append("interop")
            self._interop_device = device
        else:
            self._unavailable["interop"] = reason
        if self.ctx.version_code >= 430:
            paths.append("glsl")
        else:
            self._unavailable["glsl"] = f"needs OpenGL 4.3 compute shaders, context is {self.ctx.version_code}"
        renderer = str(self.ctx.info["GL_RENDERER"]).lower()
        if any(name in renderer for name in _SOFTWARE_RENDERERS) and "glsl" in paths:
            paths.insert(paths.index("glsl"), "cpu")
        else:
            paths.append("cpu")
        for name, why in self._unavailable.items():
            log.info("viewer path %r unavailable: %s", name, why)
        return paths

    def available(self) -> list[str]:
        return list(self._available)

    def unavailable_reasons(self) -> dict[str, str]:
        return dict(self._unavailable)

    def select(self, name: str) -> None:
        """Switch paths, releasing the previous one's GL/CUDA resources."""
        if name not in self._available:
            reason = self._unavailable.get(name, "unknown path")
            raise ValueError(f"shading path {name!r} is not available: {reason}")
        if name != self.current:
            self.release()
            self.current = name
            log.info("viewer shading path: %s", name)

    def drop(self, name: str, exc: BaseException) -> None:
        """A path failed at run time: never use it again, fall back to the next one."""
        log.error("viewer path %r failed, disabling it: %s", name, exc)
        self.release()
        self._unavailable[name] = str(exc)
        self._available = [p for p in self._available if p != name]
        self.current = self._available[0]

    @property
    def interop(self) -> interop_module.InteropShader | None:
        """The interop path's CUDA state once it has shaded a frame (diagnostics, tests)."""
        return self._interop

    def invalidate(self) -> None:
        """Weights or shading inputs changed: the GLSL path uploads them again before its next frame."""
        self._glsl_dirty = True

    def forget(self, targets: RenderTargets) -> None:
        """`targets` are about to be released: CUDA must let go of their textures first."""
        if self._interop is not None:
            self._interop.unregister((targets.position, targets.normal, targets.color))

    def shade_gpu(
        self, targets: RenderTargets, render_size: tuple[int, int], camera: Camera, mode: str,
        weights: MLPWeights, inputs: ShadingInputs, count: bool,
    ) -> int:
        """Shade the G-buffer in `targets` into their colour texture on the current GPU path."""
        if self.current == "glsl":
            if self._glsl is None:
                self._glsl = GLSLShader(self.ctx)
                self._glsl_dirty = True
            if self._glsl_dirty:
                self._glsl.set_weights(weights)
                self._glsl.set_extras(inputs)
                self._glsl_dirty = False
            return self._glsl.shade(
                targets.position, targets.normal, targets.color, render_size, np.asarray(camera.center), mode,
                inputs.highlight, count,
            )
        if self._interop is None:
            assert self._interop_device is not None
            self._interop = interop_module.InteropShader(self._interop_device)
        self._interop.prepare(weights)
        eye = torch.as_tensor(camera.center, dtype=torch.float32)
        return self._interop.shade((targets.position, targets.normal, targets.color), render_size, eye, mode, inputs)

    def release(self) -> None:
        if self._glsl is not None:
            self._glsl.release()
            self._glsl = None
        if self._interop is not None:
            self._interop.release()
            self._interop = None
        self._glsl_dirty = True
