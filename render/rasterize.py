"""Sampling step of rasterize-then-splat: which triangle, where on it and how deep, per pixel and layer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

from render.fragments import Fragments

log = logging.getLogger(__name__)

BACKENDS = ("auto", "gl", "nvdiffrast")


@runtime_checkable
class Rasterizer(Protocol):
    """What both backends provide (GLRasterizer, NvdiffrastRasterizer)."""

    def rasterize(
        self, pos_clip: torch.Tensor, tri: torch.Tensor, resolution: Sequence[int], layers: int = 1
    ) -> Fragments: ...


def rasterize(
    ctx: Rasterizer,
    pos_clip: torch.Tensor,
    tri: torch.Tensor,
    resolution: Sequence[int],
    layers: int = 1,
) -> Fragments:
    """Rasterize a triangle mesh into K depth layers with back faces culled (not differentiable).

    Tensors may be on any device; the fragments come back on `pos_clip`'s device. Gradients
    come later, from `interpolate` and splatting, never from here.

    Args:
        ctx: a rasterizer context from `make_rasterizer` (or a backend class directly).
        pos_clip: (V, 4) float32 clip-space positions, e.g. `to_clip(verts, camera.clip_matrix(n, f))`.
        tri: (F, 3) int64 (or int32) vertex indices; outward faces counter-clockwise.
        resolution: (H, W) in pixels, usually (camera.height, camera.width).
        layers: K >= 1; layer k holds the k-th nearest front-facing surface at each pixel.

    Returns:
        Fragments: tri_id (K, H, W) int64 (-1 empty), bary (K, H, W, 3) float32 (perspective-
        correct, w.r.t. tri[tri_id]), depth (K, H, W) float32 camera z (+inf empty).

    Raises:
        ValueError: on malformed inputs (shapes, dtypes, non-finite positions, bad indices,
            layers < 1).
    """
    if not isinstance(ctx, Rasterizer):
        raise ValueError(f"ctx must be a rasterizer (see make_rasterizer), got {type(ctx).__name__}")
    # The backends validate with the shared rules (render.backends._common), once per call.
    return ctx.rasterize(pos_clip, tri, resolution, layers)


def _nvdiffrast_unavailable_reason() -> str | None:
    """Why the nvdiffrast backend can't be used here, or None when it can."""
    if not torch.cuda.is_available():
        return "torch.cuda.is_available() is False"
    try:
        import nvdiffrast.torch  # noqa: F401
    except ImportError as exc:
        return f"nvdiffrast does not import ({exc}); pip install 'reconstruct[cuda]'"
    return None


def make_rasterizer(backend: str = "auto", device: torch.device | str | int | None = None) -> Rasterizer:
    """Create a rasterizer context.

    "auto" picks nvdiffrast when CUDA is available, nvdiffrast imports and its context can be
    made (its plugin compiles on first use), else gl, and logs which and why. GL contexts are bound to the thread that first uses them; make one per thread.

    Args:
        backend: "auto", "gl" (moderngl/EGL, any machine) or "nvdiffrast" (CUDA).
        device: CUDA device for nvdiffrast (current device if None); ignored by gl, which
            returns results on the input's device.

    Returns:
        A GLRasterizer or NvdiffrastRasterizer.

    Raises:
        ValueError: unknown backend name.
        RuntimeError: the requested backend can't run here.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown rasterizer backend {backend!r}; choose one of {BACKENDS}")
    if backend == "auto":
        reason = _nvdiffrast_unavailable_reason()
        if reason is None:
            from render.backends.nvdiffrast import NvdiffrastRasterizer

            try:  # the context builds nvdiffrast's CUDA plugin on first use, which can fail
                rasterizer: Rasterizer = NvdiffrastRasterizer(device)
            except Exception as exc:  # any failure to make the context means: fall back, saying why
                log.warning("rasterizer backend: gl (nvdiffrast imports but its CUDA context failed: %s)", exc)
            else:
                log.info("rasterizer backend: nvdiffrast (CUDA available and nvdiffrast imports)")
                return rasterizer
        else:
            log.info("rasterizer backend: gl (nvdiffrast not used: %s)", reason)
        backend = "gl"
    if backend == "nvdiffrast":
        from render.backends.nvdiffrast import NvdiffrastRasterizer

        return NvdiffrastRasterizer(device)
    from render.backends.gl import GLRasterizer

    return GLRasterizer()
