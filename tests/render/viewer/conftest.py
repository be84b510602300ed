"""Fixtures for the viewer pipeline: one standalone EGL context, a small scene, offscreen targets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import trimesh

from render.camera import Camera


@pytest.fixture(scope="session")
def gl_ctx() -> Iterator[Any]:
    """A standalone OpenGL 4.3 context (llvmpipe here); skips with the reason where EGL can't make one."""
    try:
        import moderngl

        ctx = moderngl.create_standalone_context(backend="egl", require=430)
    except Exception as exc:
        pytest.skip(f"no OpenGL 4.3+ context through EGL on this machine: {exc}")
    yield ctx
    ctx.release()


class ViewerScene:
    """An off-centre sphere (so a flipped image can't pass for the right one) and an oblique camera."""

    centre = np.array([0.35, -0.25, 0.1])
    radius = 0.3

    def __init__(self, ctx: Any, width: int = 48, height: int = 40) -> None:
        self.ctx = ctx
        self.size = (width, height)
        sphere = trimesh.creation.icosphere(subdivisions=3, radius=self.radius)
        self.vertices = (np.asarray(sphere.vertices) + self.centre).astype(np.float32)
        self.faces = np.asarray(sphere.faces).astype(np.int64)
        self.camera = Camera.look_at(
            np.array([0.2, -0.6, -2.2]), np.array([0.05, -0.05, 0.0]), np.array([0.0, -1.0, 0.0]), 45.0, width, height
        )
        self.texture = ctx.texture(self.size, 4)
        self.target = ctx.framebuffer([self.texture])

    def image(self) -> np.ndarray:
        """(H, W, 3) uint8 of the offscreen target as a window shows it: row 0 at the top.

        GL's row 0 is the bottom row of a window framebuffer, so the read-back is flipped here and
        only here; the pipeline must have flipped when drawing for the result to be upright.
        """
        w, h = self.size
        raw = np.frombuffer(self.target.read(components=3), np.uint8).reshape(h, w, 3)
        return np.flipud(raw).copy()

    def release(self) -> None:
        self.target.release()
        self.texture.release()


@pytest.fixture
def scene(gl_ctx: Any) -> Iterator[ViewerScene]:
    """The scene, with the session context made current for the test (another test may have made its own)."""
    with gl_ctx:
        s = ViewerScene(gl_ctx)
        yield s
        s.release()


@pytest.fixture(scope="session")
def make_scene(gl_ctx: Any):
    """Factory for scenes of other sizes (the caller releases them)."""
    return lambda width, height: ViewerScene(gl_ctx, width, height)
