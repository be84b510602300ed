"""Render targets of the viewer: G-buffer and colour textures per size, at most two sizes kept.

A moving camera renders at a reduced size and a still one at full size; keeping both avoids
reallocating textures on every start and stop of a drag, and keeping no more bounds GPU memory.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

KEPT_SIZES = 2  # full size and one reduced size (moving camera)


@dataclass
class RenderTargets:
    """Render targets of one G-buffer size; `serial` is the frame whose G-buffer they hold."""

    size: tuple[int, int]
    position: Any
    normal: Any
    color: Any
    depth: Any
    gbuffer_fbo: Any
    color_fbo: Any
    serial: int = -1

    def release(self) -> None:
        for obj in (self.gbuffer_fbo, self.color_fbo, self.position, self.normal, self.color, self.depth):
            obj.release()


def make_targets(ctx: Any, size: tuple[int, int]) -> RenderTargets:
    """Position and normal (RGBA32F), colour (RGBA8) and depth of `size`, with their framebuffers."""
    import moderngl

    position = ctx.texture(size, 4, dtype="f4")
    normal = ctx.texture(size, 4, dtype="f4")
    color = ctx.texture(size, 4, dtype="f1")
    for tex in (position, normal, color):
        tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
        tex.repeat_x = tex.repeat_y = False
    depth = ctx.depth_renderbuffer(size)
    log.debug("viewer render targets %dx%d", *size)
    return RenderTargets(
        size=size,
        position=position,
        normal=normal,
        color=color,
        depth=depth,
        gbuffer_fbo=ctx.framebuffer([position, normal, color], depth),
        color_fbo=ctx.framebuffer([color], depth),
    )


class TargetCache:
    """The targets of the last KEPT_SIZES sizes used; `on_drop` runs before one is released."""

    def __init__(self, ctx: Any, on_drop: Callable[[RenderTargets], None]) -> None:
        self.ctx = ctx
        self.on_drop = on_drop
        self._targets: OrderedDict[tuple[int, int], RenderTargets] = OrderedDict()

    def get(
        self, size: tuple[int, int], scale: float, render_size: tuple[int, int] | None = None
    ) -> tuple[RenderTargets, tuple[int, int]]:
        """Targets for a viewport of `size` rendered at `scale` (or exactly `render_size`), and that size."""
        w, h = int(size[0]), int(size[1])
        if w < 1 or h < 1:
            raise ValueError(f"size must be positive, got {size}")
        if render_size is None:
            s = min(max(float(scale), 1e-3), 1.0)
            render_size = (max(1, round(w * s)), max(1, round(h * s)))
        key = (int(render_size[0]), int(render_size[1]))
        targets = self._targets.get(key)
        if targets is None:
            while len(self._targets) >= KEPT_SIZES:
                _, old = self._targets.popitem(last=False)
                self.on_drop(old)
                old.release()
            targets = make_targets(self.ctx, key)
            self._targets[key] = targets
        else:
            self._targets.move_to_end(key)
        return targets, key

    def holds(self, targets: RenderTargets) -> bool:
        """Whether `targets` are still alive here (not dropped for another size)."""
        return self._targets.get(targets.size) is targets

    def release(self) -> None:
        for targets in self._targets.values():
            targets.release()
        self._targets.clear()
