"""Mitsuba as a `bench render` peer: a set-up task whose gradient is right, timed; a clear skip otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.bench import bench_camera, bench_mesh
from recon.bench_mitsuba import TASKS, MitsubaStep, bench_mitsuba, unavailable_reason

SIZE = 64


@pytest.fixture(scope="module")
def mitsuba_ready() -> None:
    """Skips, saying why, when Mitsuba is not installed or Dr.Jit has no LLVM it can compile with."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def small_case() -> tuple[np.ndarray, np.ndarray]:
    return bench_mesh(2_500)


def test_missing_module_is_one_line_saying_how_to_install() -> None:
    reason = unavailable_reason("no_such_renderer_module")
    assert reason is not None and "\n" not in reason
    assert "no_such_renderer_module" in reason and "pip install 'reconstruct[peers]'" in reason


@pytest.mark.parametrize("task", TASKS)
def test_gradient_moves_the_mesh_towards_the_target(mitsuba_ready, small_case, task: str) -> None:
    vertices, faces = small_case
    step = MitsubaStep(task, vertices, faces, bench_camera(vertices, SIZE))
    loss, grad = step()
    assert np.isfinite(loss) and loss > 0
    assert grad.shape == vertices.shape and np.isfinite(grad).all() and np.abs(grad).max() > 0
    # The target is the mesh moved by `shift`: the loss must fall along it, and the gradient say so.
    assert float((grad * step.shift).sum()) < 0
    assert step.loss(vertices + step.shift / 2) < 0.8 * step.loss(vertices)


def test_bench_times_both_tasks(mitsuba_ready, small_case) -> None:
    vertices, faces = small_case
    times = bench_mitsuba(vertices, faces, bench_camera(vertices, SIZE), repeats=1)
    for task in TASKS:
        for key in (f"{task}_warmup_ms", f"{task}_step_ms"):
            assert np.isfinite(times[key]) and times[key] > 0, key


@pytest.mark.gl
def test_renders_the_pixels_our_renderer_covers(mitsuba_ready, small_case) -> None:
    from render.renderer import Renderer
    from render.splat import splat

    vertices, faces = small_case
    camera = bench_camera(vertices, SIZE)
    renderer = Renderer("gl", torch.device("cpu"), layers=2)
    v, f = torch.from_numpy(vertices), torch.from_numpy(faces)
    frags, clip_m = renderer.sample(v, f, camera)
    g = renderer.evaluate(v, f, camera, frags, clip_m)
    ours = splat(g.covered[..., None].float(), g.pixel_xy, frags.depth)[..., 0].numpy() > 0.5
    theirs = np.asarray(MitsubaStep("silhouette", vertices, faces, camera).image(vertices))[..., 0] > 0.5
    assert (ours & theirs).sum() / (ours | theirs).sum() > 0.95
