"""Creating, switching and releasing pipelines 50 times leaves no GL object (or memory) behind."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import trimesh

from render.camera import Camera
from render.viewer import MLPWeights, ViewerPipeline

pytestmark = pytest.mark.gl

_FACTORIES = (
    "buffer", "texture", "depth_texture", "texture_array", "texture3d", "texture_cube", "renderbuffer",
    "depth_renderbuffer", "framebuffer", "program", "compute_shader", "vertex_array", "simple_vertex_array",
    "sampler", "query",
)  # fmt: skip


class _Recorder:
    """Wraps a context's object factories to keep every object the pipeline creates."""

    def __init__(self, ctx: Any) -> None:
        self.objects: list[Any] = []
        for name in _FACTORIES:
            original = getattr(ctx, name)
            setattr(ctx, name, self._wrap(original))

    def _wrap(self, factory: Any) -> Any:
        def make(*args: Any, **kwargs: Any) -> Any:
            obj = factory(*args, **kwargs)
            self.objects.append(obj)
            return obj

        return make

    def live(self) -> list[Any]:
        return [o for o in self.objects if type(o.mglo).__name__ != "InvalidObject"]


@pytest.fixture
def recorded() -> Iterator[tuple[Any, _Recorder]]:
    """A private context (so the wrapping can't leak into other tests) with a recorder."""
    import moderngl

    try:
        ctx = moderngl.create_standalone_context(backend="egl", require=430)
    except Exception as exc:
        pytest.skip(f"no OpenGL 4.3+ context through EGL: {exc}")
    with ctx:
        yield ctx, _Recorder(ctx)
    ctx.release()


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _scene() -> tuple[np.ndarray, np.ndarray, Camera]:
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    camera = Camera.look_at(np.array([0.3, -0.4, -2.0]), np.zeros(3), np.array([0.0, -1.0, 0.0]), 45.0, 256, 256)
    return np.asarray(sphere.vertices, np.float32), np.asarray(sphere.faces), camera


def test_create_switch_release_fifty_times_frees_everything(recorded) -> None:
    ctx, recorder = recorded
    vertices, faces, camera = _scene()
    weights = MLPWeights.random(pe_octaves=1, hidden_h=8, layers_h=1, features=4, hidden_c=8, layers_c=1)
    color = ctx.texture((256, 256), 4)
    target = ctx.framebuffer([color])
    baseline = len(recorder.live())
    rss = []
    for i in range(50):
        pipe = ViewerPipeline(ctx)
        pipe.set_mesh(vertices, faces)
        pipe.set_shader(weights)
        pipe.set_frusta([camera], highlight=0)
        pipe.set_overlay(np.ones((8, 8, 3), np.float32), 0.3)
        pipe.render(camera, (256, 256), target, mode="flat", wireframe=True)
        for path in pipe.available_paths():
            pipe.set_path(path)
            pipe.render(camera, (256, 256), target, mode="neural", scale=1 / 16)
        pipe.render(camera, (128, 96), target, mode="normals")  # a resize
        pipe.release()
        assert len(recorder.live()) == baseline, f"iteration {i}: {recorder.live()[baseline:]}"
        gc.collect()
        rss.append(_rss_mb())
    # Each pipeline held ~3 MB of 256² float targets; 50 leaked ones would add 150 MB.
    assert rss[-1] - rss[9] < 30, rss
    target.release()
    color.release()


def test_switching_paths_in_one_pipeline_does_not_accumulate(recorded) -> None:
    ctx, recorder = recorded
    vertices, faces, camera = _scene()
    color = ctx.texture((64, 64), 4)
    target = ctx.framebuffer([color])
    pipe = ViewerPipeline(ctx)
    pipe.set_mesh(vertices, faces)
    pipe.set_shader(MLPWeights.random(pe_octaves=1, hidden_h=8, layers_h=1, features=4, hidden_c=8, layers_c=1))
    counts = []
    for i in range(50):
        pipe.set_path(pipe.available_paths()[i % len(pipe.available_paths())])
        pipe.render(camera, (64, 64), target, mode="neural", scale=0.25 if i % 3 else 0.5)
        pipe.set_mesh(vertices * (1 + 0.001 * i), faces)  # live mesh updates reuse their buffers
        counts.append(len(recorder.live()))
    assert max(counts[10:]) <= max(counts[:10])
    pipe.release()
    target.release()
    color.release()
    assert not recorder.live()
