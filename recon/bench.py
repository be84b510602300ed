"""`reconstruct bench render`: what each RtS stage costs as the mesh grows (numbers, not tests).

The RtS paper's claim to check: sampling is the only stage that sees the triangles; evaluation,
shading, splatting and the backward pass work per pixel, so their cost should barely depend on the
mesh size (the 2M-triangle case at most ~3× the 2.5K one).

The shaded task's shader is a small MLP whose matrix products run as training runs the NDS
shader's (`shader_precision`, "auto" by default: bfloat16 on CPUs with native bfloat16), so the
step timed is the step a run takes.

Meshes are the demo object (a real, closed, non-convex surface) from marching cubes at a grid
chosen so that 0–5 rounds of 1→4 midpoint subdivision land near 2.5K, 326K and 2M triangles.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import trimesh

from recon import bench_mitsuba
from recon.demo import build_mesh, load_recipe
from recon.mesh import vertex_normals
from recon.precision import resolve_precision, with_precision
from render.camera import Camera
from render.renderer import Renderer

TARGETS = (2_500, 326_000, 2_000_000)
MAX_BASE = 6_000  # triangles of the marching-cubes mesh before subdivision
PEERS = ("mitsuba",)  # other renderers `bench render` can time on the same task


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


def bench_camera(vertices: np.ndarray, size: int) -> Camera:
    """The benchmark's view of a mesh, shared with the peers so that they render the same pixels."""
    lo, hi = vertices.min(0), vertices.max(0)
    centre = (lo + hi) / 2
    radius = float(np.linalg.norm(hi - lo)) / 2
    return Camera.look_at(centre + np.array([0.5, 0.6, -2.4]) * radius * 1.25, centre, np.array([0.0, 1.0, 0.0]), 45.0, size, size)


def _bench_case(
    renderer: Renderer, vertices: torch.Tensor, faces: torch.Tensor, camera: Camera, repeats: int, precision: str
) -> dict:
    device = vertices.device
    sync = device.type == "cuda"
    size = camera.width
    normals = vertex_normals(vertices, faces)
    mlp = with_precision(_small_mlp(device), precision, device)
    frags, clip_m = renderer.sample(vertices, faces, camera)
    row: dict = {"triangles": int(faces.shape[0]), "vertices": int(vertices.shape[0])}
    row["sampling_ms"] = _median_ms(lambda: renderer.sample(vertices, faces, camera), repeats, sync)

    def evaluate(v: torch.Tensor):
        return renderer.evaluate(v, faces, camera, frags, clip_m, normals)

    row["evaluation_ms"] = _median_ms(lambda: evaluate(vertices), repeats, sync)
    gb = evaluate(vertices)

    def shade(g):
        return renderer.shade_samples(g, lambda p, n, d: mlp(torch.cat([p, n, d], -1)))

    samples = shade(gb).detach()
    row["shading_ms"] = _median_ms(lambda: shade(gb), repeats, sync)
    row["splatting_ms"] = _median_ms(lambda: renderer.splat(gb, samples), repeats, sync)
    target = torch.zeros(size, size, device=device)

    def silhouette_step() -> None:
        v = vertices.detach().requires_grad_(True)
        g = evaluate(v)
        alpha = renderer.splat(g, renderer.shade_samples(g, None))[..., 0]
        (alpha - target).abs().mean().backward()

    def shaded_step() -> None:
        v = vertices.detach().requires_grad_(True)
        g = evaluate(v)
        renderer.splat(g, shade(g)).abs().mean().backward()

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


def _peer_row(row: dict, peer: dict) -> dict:
    """Ours against a peer per task; ours counts sampling too, as the peer's step rebuilds its BVH and traces rays."""
    out = {}
    for task in bench_mitsuba.TASKS:
        ours = row["sampling_ms"] + row[f"{task}_step_ms"]
        theirs = peer[f"{task}_step_ms"]
        out[task] = {"ours_ms": ours, "peer_ms": theirs, "peer_warmup_ms": peer[f"{task}_warmup_ms"], "ratio": theirs / ours}
    return out


def bench_render(
    device: str = "cpu",
    size: int = 512,
    backend: str = "auto",
    repeats: int = 5,
    targets: tuple[int, ...] = TARGETS,
    peers: tuple[str, ...] = (),
    shader_precision: str = "auto",
) -> dict:
    """Per-stage median milliseconds at `size`² for meshes of about `targets` triangles (see module doc).

    Each of `peers` (only "mitsuba" exists) times its own step on the same mesh, camera and image
    size, or is reported as skipped with the reason when it cannot run here.
    """
    unknown = set(peers) - set(PEERS)
    if unknown:
        raise ValueError(f"unknown peers {sorted(unknown)}; known: {PEERS}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from recon.errors import ReconstructError

        raise ReconstructError("--device cuda: no CUDA device is available to PyTorch")
    load_before = os.getloadavg()[0]
    renderer = Renderer(backend, dev, layers=2)
    precision = resolve_precision(shader_precision, dev)
    meshes = [bench_mesh(target) for target in targets]
    rows = []
    for v, f in meshes:
        camera = bench_camera(v, size)
        vertices, faces = torch.from_numpy(v).to(dev), torch.from_numpy(f).to(dev)
        rows.append(_bench_case(renderer, vertices, faces, camera, repeats, precision))
    # The peer is loaded and run only after all of ours: its thread pool and JIT stay out of our timings.
    peer_info: dict = {}
    if "mitsuba" in peers:
        reason = bench_mitsuba.unavailable_reason()
        peer_info["mitsuba"] = {"skipped": reason} if reason else bench_mitsuba.describe()
        if not reason:
            for row, (v, f) in zip(rows, meshes):
                peer = bench_mitsuba.bench_mitsuba(v, f, bench_camera(v, size), repeats)
                row["peers"] = {"mitsuba": _peer_row(row, peer)}
    small, large = rows[0], rows[-1]
    ratio = {
        kind: (large[f"{kind}_step_ms"]) / max(small[f"{kind}_step_ms"], 1e-9) for kind in ("silhouette", "shaded")
    }
    return {
        "device": str(dev),
        "backend": renderer.backend,
        "size": size,
        "layers": 2,
        "shader_precision": precision,
        "torch_threads": torch.get_num_threads(),
        # Other processes' share of the cores makes timings noisy; this says how much there was.
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0], "cpus": os.cpu_count()},
        "cases": rows,
        "differentiable_cost_ratio_largest_to_smallest": ratio,
        "peers": peer_info,
    }


def format_render_table(result: dict) -> str:
    cols = ("triangles", "sampling_ms", "evaluation_ms", "shading_ms", "splatting_ms", "silhouette_step_ms",
            "shaded_step_ms", "peak_memory_mb")
    load = result["load_average_1min"]
    head = (
        f"render benchmark: {result['device']}, {result['backend']} backend, {result['size']}², K={result['layers']}, "
        f"shader products in {result['shader_precision']}; "
        f"load average {load['before']:.1f} → {load['after']:.1f} on {load['cpus']} CPUs"
    )
    lines = [head, "  ".join(f"{c:>18}" for c in cols)]
    for row in result["cases"]:
        lines.append("  ".join(f"{row[c]:>18.1f}" if isinstance(row[c], float) else f"{row[c]:>18}" for c in cols))
    ratio = result["differentiable_cost_ratio_largest_to_smallest"]
    lines.append(
        "differentiable part (evaluation + shading + splat + backward), largest / smallest mesh: "
        f"silhouette {ratio['silhouette']:.2f}×, shaded {ratio['shaded']:.2f}× (RtS claim: ≤ ~3×)"
    )
    for name, info in result["peers"].items():
        lines.extend(_format_peer(name, info, result["cases"]))
    return "\n".join(lines)


def _format_peer(name: str, info: dict, cases: list[dict]) -> list[str]:
    """Ours (sampling + step) against the peer per task and size, or the one-line reason it was skipped."""
    if "skipped" in info:
        return [f"peer {name} skipped: {info['skipped']}"]
    lines = [
        f"peer {name} {info['version']} ({info['variant']}, LLVM {info['llvm']}, {info['threads']} threads, "
        f"{info['spp']} spp, target moved {info['shift_px']:g} px); ours = sampling + step, median ms",
        f"{'triangles':>10}  " + "  ".join(
            f"{task + ' ' + col:>{w}}" for task in bench_mitsuba.TASKS for col, w in (("ours", 15), (name, 18), ("warm-up", 18), ("ratio", 16))
        ),
    ]
    for row in cases:
        cells = []
        for task in bench_mitsuba.TASKS:
            t = row["peers"][name][task]
            cells += [f"{t['ours_ms']:>15.1f}", f"{t['peer_ms']:>18.1f}", f"{t['peer_warmup_ms']:>18.1f}", f"{t['ratio']:>15.1f}×"]
        lines.append(f"{row['triangles']:>10}  " + "  ".join(cells))
    lines.append(f"ratio = {name} / ours: how many times faster our step is")
    return lines


# ----------------------------------------------------------------------------- viewer


VIEWER_MODE = "neural"


def _viewer_scene(run: str | None) -> tuple[object, np.ndarray, np.ndarray, str]:
    """(MLPWeights, vertices in the normalised cube, faces, description of the shader and mesh).

    A run folder of any method: its `shader.*` is NDS's neural shader or DVR's texture field."""
    from recon.mesh.visual_hull import read_trimesh
    from recon.run_folder import RunFolder
    from recon.shader import NeuralShader, ShaderConfig, load_shader

    if run is not None:
        folder = RunFolder(run)
        shader, (centre, scale) = load_shader(folder.shader_file)
        mesh = read_trimesh(folder.mesh_file)
        vertices = (np.asarray(mesh.vertices) - centre) * scale  # world → the shader's normalised cube
        weights = shader.mlp_weights()  # NDS's neural shader or DVR's texture field, as the run wrote it
        kind = "texture field (position-only)" if weights.position_only else "neural shader"
        return weights, vertices.astype(np.float32), np.asarray(mesh.faces), f"trained {kind} and mesh of {folder.path}"
    from recon.demo import demo_dataset
    from recon.eval import REFERENCE_MESH

    mesh = read_trimesh(demo_dataset() / REFERENCE_MESH)
    lo, hi = mesh.bounds
    vertices = (np.asarray(mesh.vertices) - (lo + hi) / 2) * (2.0 / float(np.max(hi - lo)))
    torch.manual_seed(0)
    shader = NeuralShader(ShaderConfig())
    return (
        shader.mlp_weights(),
        vertices.astype(np.float32),
        np.asarray(mesh.faces),
        "freshly initialised shader (paper defaults; no --run given) on the demo's ground-truth mesh",
    )


def bench_viewer(size: tuple[int, int] = (512, 512), frames: int = 10, run: str | None = None) -> dict:
    """Median per-stage frame time of every available viewer shading path, and its error vs torch.

    Renders the neural mode of a shader (a run folder's trained one, else a fresh paper-default
    one on the demo's ground-truth mesh) on a standalone EGL context with `sync_stats`, after one
    untimed warm-up frame per path (compilation). The error is the largest difference over covered
    pixels between the path's 8-bit output and the float32 torch reference on the same G-buffer.
    """
    import moderngl

    from render.viewer import ViewerPipeline, shade_reference

    weights, vertices, faces, description = _viewer_scene(run)
    width, height = int(size[0]), int(size[1])
    camera = Camera.look_at(np.array([1.4, -1.3, -2.9]), np.zeros(3), np.array([0.0, -1.0, 0.0]), 45.0, width, height)
    ctx = moderngl.create_standalone_context(backend="egl", require=430)
    rows = []
    try:
        with ctx:
            color = ctx.texture((width, height), 4)
            target = ctx.framebuffer([color])
            pipe = ViewerPipeline(ctx, sync_stats=True)
            try:
                pipe.set_mesh(vertices, faces)
                pipe.set_shader(weights)  # type: ignore[arg-type]
                for path in pipe.available_paths():
                    pipe.set_path(path)
                    pipe.render(camera, (width, height), target, VIEWER_MODE)
                    stats = [pipe.render(camera, (width, height), target, VIEWER_MODE) for _ in range(max(1, frames))]
                    out = pipe.read_color()
                    position, normal = pipe.read_gbuffer()  # type: ignore[misc]
                    covered = position[..., 3] > 0
                    x = torch.from_numpy(position[covered][:, :3])
                    n = torch.from_numpy(normal[covered][:, :3])
                    omega = torch.nn.functional.normalize(torch.from_numpy(camera.center.astype(np.float32)) - x, dim=-1)
                    with torch.inference_mode():
                        reference = shade_reference(weights, x, n, omega).numpy()  # type: ignore[arg-type]
                    diff = float(np.abs(out[covered][:, :3] / 255.0 - reference).max()) if covered.any() else 0.0
                    row = {"path": path, "frames": len(stats), "covered_pixels": int(covered.sum())}
                    for key in ("gbuffer_ms", "shading_ms", "display_ms", "total_ms"):
                        row[key] = statistics.median(getattr(s, key) for s in stats)
                    row["fps"] = 1000.0 / max(row["total_ms"], 1e-9)
                    row["max_abs_diff"] = diff
                    row["max_abs_diff_255"] = diff * 255
                    rows.append(row)
                unavailable = pipe.unavailable_reasons()
            finally:
                pipe.release()
                target.release()
                color.release()
            renderer = str(ctx.info["GL_RENDERER"])
    finally:
        ctx.release()
    return {
        "size": [width, height],
        "frames": frames,
        "mode": VIEWER_MODE,
        "shader": description,
        "triangles": int(len(faces)),
        "gl_renderer": renderer,
        "torch_threads": torch.get_num_threads(),
        "paths": rows,
        "unavailable": unavailable,
    }


def format_viewer_table(result: dict) -> str:
    """The `bench viewer` table: one row per path, medians in milliseconds."""
    w, h = result["size"]
    lines = [
        f"viewer benchmark: {w}×{h}, {result['gl_renderer']}, {result['triangles']} triangles, "
        f"median of {result['frames']} frames, torch threads {result['torch_threads']}",
        f"shader: {result['shader']}",
        f"{'path':>8} {'gbuffer_ms':>11} {'shading_ms':>11} {'display_ms':>11} {'total_ms':>10} {'fps':>8} "
        f"{'covered_px':>11} {'max_diff':>10}",
    ]
    for r in result["paths"]:
        diff = f"{r['max_abs_diff_255']:.2f}/255"
        lines.append(
            f"{r['path']:>8} {r['gbuffer_ms']:>11.2f} {r['shading_ms']:>11.1f} {r['display_ms']:>11.2f} "
            f"{r['total_ms']:>10.1f} {r['fps']:>8.2f} {r['covered_pixels']:>11} {diff:>10}"
        )
    for name, why in result["unavailable"].items():
        lines.append(f"{name:>8} unavailable: {why}")
    return "\n".join(lines)
