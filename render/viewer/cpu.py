"""The CPU shading path, split so a GUI can run the expensive part off its UI thread.

    frame = pipe.capture_gbuffer(camera, size, scale)      # GL, UI thread: covered pixels → numpy/torch
    colors = shade_cpu(weights, frame, mode, inputs)       # pure torch, no GL: any thread
    pipe.present(frame, colors, target)                    # GL, UI thread: upload and draw

A full-resolution torch shading of the paper's 256-wide MLP takes around a second on a laptop CPU;
`AdaptiveResolution` picks the G-buffer scale that keeps it within a frame budget while the camera
moves (render at full scale once it stops).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from render.camera import Camera
from render.viewer.inputs import NO_INPUTS, ShadingInputs
from render.viewer.mlp import MLPWeights, shade_reference

log = logging.getLogger(__name__)

# Pixels per torch call: bounds the activations (chunk × 256 floats × a few layers) to ~100 MB.
CHUNK_PIXELS = 65_536


@dataclass(frozen=True)
class GBufferFrame:
    """The covered pixels of one G-buffer pass, read back to the CPU (immutable; safe to hand to a thread).

    Attributes:
        camera: the camera it was rendered with.
        size: (width, height) of the target it is meant for.
        render_size: (width, height) of the G-buffer (size · scale, rounded).
        pixel: (N,) int64 flat indices row · width + column of the covered pixels, image rows top first.
        position: (N, 3) float32 normalised surface points.
        normal: (N, 3) float32 unit normals.
        view_dir: (N, 3) float32 unit directions towards the camera centre.
        serial: the pipeline's frame counter, to tell whether its GL state still matches.
        gbuffer_ms: time of the G-buffer pass and read-back.
    """

    camera: Camera
    size: tuple[int, int]
    render_size: tuple[int, int]
    pixel: torch.Tensor
    position: torch.Tensor
    normal: torch.Tensor
    view_dir: torch.Tensor
    serial: int
    gbuffer_ms: float

    @property
    def covered_pixels(self) -> int:
        return int(self.pixel.shape[0])


@torch.inference_mode()
def shade_cpu(
    weights: MLPWeights,
    frame: GBufferFrame,
    mode: str = "neural",
    inputs: ShadingInputs = NO_INPUTS,
) -> torch.Tensor:
    """(N, 3) float32 RGB in [0, 1] of the frame's covered pixels, in chunks; no GL, thread-safe.

    `weights` and `inputs` are only read, so a snapshot can be shared between threads.
    Modes and inputs as in `render.viewer.mlp.shade_reference`.
    """
    weights = weights.to("cpu", torch.float32)
    out = torch.empty((frame.covered_pixels, 3), dtype=torch.float32)
    for start in range(0, frame.covered_pixels, CHUNK_PIXELS):
        part = slice(start, start + CHUNK_PIXELS)
        out[part] = shade_reference(
            weights, frame.position[part], frame.normal[part], frame.view_dir[part],
            mode, inputs,
        )
    return out


class AdaptiveResolution:
    """G-buffer scale for the CPU path that keeps shading near `budget_ms` while the camera moves.

    Shading cost is proportional to the covered pixels, i.e. to scale²; after each frame `update`
    re-estimates the cost per pixel and returns the scale for the next one (smoothed, clamped to
    [min_scale, 1]).
    """

    def __init__(self, budget_ms: float = 60.0, min_scale: float = 0.125) -> None:
        self.budget_ms = budget_ms
        self.min_scale = min_scale
        self.scale = 0.5
        self._ms_per_pixel: float | None = None

    def update(self, shading_ms: float, covered_pixels: int) -> float:
        """Feed one frame's shading time at `self.scale`; returns the next scale."""
        if covered_pixels > 0 and shading_ms > 0:
            sample = shading_ms / covered_pixels
            self._ms_per_pixel = sample if self._ms_per_pixel is None else 0.7 * self._ms_per_pixel + 0.3 * sample
            full_pixels = covered_pixels / (self.scale * self.scale)
            ideal = math.sqrt(self.budget_ms / (self._ms_per_pixel * full_pixels))
            self.scale = min(1.0, max(self.min_scale, 0.5 * self.scale + 0.5 * ideal))
        return self.scale
