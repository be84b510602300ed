"""`reconstruct bench render`: what each RtS stage costs as the mesh grows (numbers, not tests).

The RtS paper's claim to check: sampling is the only stage that sees the triangles; evaluation,
shading, splatting and the backward pass work per pixel, so their cost should barely depend on the
mesh size (the 2M-triangle case at most ~3× the 2.5K one).

Meshes are the demo object (a real, closed, non-convex surface) from marching cubes at a grid
chosen so that 0–5 rounds of 1→4 midpoint subdivision land near 2.5K, 326K and 2M triangles.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import trimesh

from recon.demo import build_mesh, load_recipe
from recon.mesh import vertex_normals
from render.camera import Camera
from render.renderer import Renderer
from render.splat import splat

TARGETS = (2_500, 326_000, 2_000_000)
MAX_BASE = 6_000  # triangles of the marching-cubes mesh before subdivision


def _demo_mesh(grid: int) -> trimesh.Trimesh:
    recipe = load_recipe()
    recipe["mesh"]["grid_resolution"] = grid
    return build_mesh(recipe)


def bench_mesh(target: int) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, faces) of the demo object with about `target` triangles."""
    rounds = 0
    while target / 4**rounds > MAX_BASE:
        rounds += 1
    base_target = target / 4**rounds
    probe = _demo_mesh(48)
    grid = max(8, round(48 * np.sqrt(base_target / len(probe.faces))))
    mesh = probe if grid == 48 else _demo_mesh(grid)
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    for _ in range(rounds):
        vertices, faces = trimesh.remesh.subdivide(vertices, faces)
    return vertices.astype(np.float32), faces.astype(np.int64)


def _median_ms(fn: Callable[[], object], repeats: int, sync: bool) -> float:
    times = []
    for _ in range(repeats + 1):  # the first call warms caches and is not counted
        if sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times[1:])


def _small_mlp(device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(9, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3), torch.nn.Sigmoid()
    ).to(device)


def _bench_case(renderer: Renderer, vertices: torch.Tensor, faces: torch.Tensor, size: int, repeats: int) -> dict:
    device = vertices.device
    sync = device.type == "cuda"
    lo, hi = vertices.min(0).values.cpu().numpy(), vertices.max(0).values.cpu().numpy()
    centre = (lo + hi) / 2
    radius = float(np.linalg.norm(hi - lo)) / 2
    camera = Camera.look_at(centre + np.array([0.5, 0.6, -2.4]) * radius * 1.25, centre, np.array([0.0, 1.0, 0.0]), 45.0, size, size)
    normals = vertex_normals(vertices, faces)
    mlp = _small_mlp(device)
    frags, clip_m = renderer.sample(vertices, faces, camera)
    row: dict = {"triangles": int(faces.shape[0]), "vertices": int(vertices.shape[0])}
    row["sampling_ms"] = _median_ms(lambda: renderer.sample(vertices, faces, camera), repeats, sync)

    def evaluate(v: torch.Tensor):
        return renderer.evaluate(v, faces, camera, frags, clip_m, normals)

    row["evaluation_ms"] = _median_ms(lambda: evaluate(vertices), repeats, sync)
    gb = evaluate(vertices)
    samples = renderer.shade(gb, lambda p, n, d: mlp(torch.cat([p, n, d], -1)))
    row["shading_ms"] = _median_ms(lambda: renderer.shade(gb, lambda p, n, d: mlp(torch.cat([p, n, d], -1))), repeats, sync)
    row["splatting_ms"] = _median_ms(lambda: splat(samples.detach(), gb.pixel_xy.detach(), frags.depth), repeats, sync)
    target = torch.zeros(size, size, device=device)

    def silhouette_step() -> None:
        v = vertices.detach().requires_grad_(True)
        g = evaluate(v)
        alpha = splat(g.covered[..., None].to(v.dtype), g.pixel_xy, frags.depth)[..., 0]
        (alpha - target).abs().mean().backward()

    def shaded_step() -> None:
        v = vertices.detach().requires_grad_(True)
        g = evaluate(v)
        out = splat(renderer.shade(g, lambda p, n, d: mlp(torch.cat([p, n, d], -1))), g.pixel_xy, frags.depth)
        out.abs().mean().backward()

    row["silhouette_step_ms"] = _median_ms(silhouette_step, repeats, sync)
    row["shaded_step_ms"] = _median_ms(shaded_step, repeats, sync)
    # Differentiable part = evaluation + splat + backward: everything after sampling.
    row["silhouette_backward_ms"] = max(0.0, row["silhouette_step_ms"] - row["evaluation_ms"] - row["splatting_ms"])
    row["shaded_backward_ms"] = max(0.0, row["shaded_step_ms"] - row["evaluation_ms"] - row["shading_ms"] - row["splatting_ms"])
    if sync:
        row["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
    else:
        row["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS
    return row


def bench_render(
    device: str = "cpu", size: int = 512, backend: str = "auto", repeats: int = 5, targets: tuple[int, ...] = TARGETS
) -> dict:
    """Per-stage median milliseconds at `size`² for meshes of about `targets` triangles (see module doc)."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from recon.errors import ReconstructError

        raise ReconstructError("--device cuda: no CUDA device is available to PyTorch")
    renderer = Renderer(backend, dev, layers=2)
    rows = []
    for target in targets:
        v, f = bench_mesh(target)
        rows.append(_bench_case(renderer, torch.from_numpy(v).to(dev), torch.from_numpy(f).to(dev), size, repeats))
    small, large = rows[0], rows[-1]
    ratio = {
        kind: (large[f"{kind}_step_ms"]) / max(small[f"{kind}_step_ms"], 1e-9) for kind in ("silhouette", "shaded")
    }
    return {
        "device": str(dev),
        "backend": renderer.backend,
        "size": size,
        "layers": 2,
        "torch_threads": torch.get_num_threads(),
        "cases": rows,
        "differentiable_cost_ratio_largest_to_smallest": ratio,
    }


def format_render_table(result: dict) -> str:
    cols = ("triangles", "sampling_ms", "evaluation_ms", "shading_ms", "splatting_ms", "silhouette_step_ms",
            "shaded_step_ms", "peak_memory_mb")
    head = f"render benchmark: {result['device']}, {result['backend']} backend, {result['size']}², K={result['layers']}"
    lines = [head, "  ".join(f"{c:>18}" for c in cols)]
    for row in result["cases"]:
        lines.append("  ".join(f"{row[c]:>18.1f}" if isinstance(row[c], float) else f"{row[c]:>18}" for c in cols))
    ratio = result["differentiable_cost_ratio_largest_to_smallest"]
    lines.append(
        "differentiable part (evaluation + shading + splat + backward), largest / smallest mesh: "
        f"silhouette {ratio['silhouette']:.2f}×, shaded {ratio['shaded']:.2f}× (RtS claim: ≤ ~3×)"
    )
    return "\n".join(lines)
