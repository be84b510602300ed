"""`reconstruct`: the engine, headless. Every failure on bad input is one line on stderr and exit 2."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recon.errors import ReconstructError

log = logging.getLogger("recon")

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _scene_summary(scene) -> dict:
    """The `info --json` document other tools check conversions against (world→camera, OpenCV, pixels)."""
    return {
        "format": scene.format,
        "source": str(scene.source),
        "bbox": scene.bbox.tolist(),
        "bbox_source": scene.bbox_source,
        "views": [
            {
                "name": v.name,
                "width": v.camera.width,
                "height": v.camera.height,
                "K": v.camera.K.tolist(),
                "R": v.camera.R.tolist(),
                "t": v.camera.t.tolist(),
                "center": v.camera.center.tolist(),
            }
            for v in scene.views
        ],
    }


def _print_scene(scene) -> None:
    width, height = scene.resolution
    lo, hi = scene.bbox
    fmt = lambda a: "[" + ", ".join(f"{x:.4g}" for x in a) + "]"  # noqa: E731
    print(f"format      {scene.format}  ({scene.source})")
    print(f"views       {len(scene.views)} at {width}×{height}")
    print(f"bbox        min {fmt(lo)}  max {fmt(hi)}  ({scene.bbox_source})")
    print("cameras     name: centre (world)")
    for v in scene.views:
        print(f"  {v.name}: {fmt(v.camera.center)}")


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ReconstructError("--device cuda: no CUDA device is available to PyTorch; use --device cpu")
    return name


def _deterministic(args: argparse.Namespace, extra: dict, recorded: bool = False) -> None:
    """--deterministic (or a run that recorded it): PyTorch's deterministic kernels where it has them.

    On the CPU every step is deterministic already. On CUDA the atomic adds of splatting and of the
    G-buffer's backward (`index_add_`, `scatter_add_`) then take their deterministic forms; an
    operation without one warns instead of failing. Recorded in run.json, so `resume` keeps it.
    """
    if not (getattr(args, "deterministic", False) or recorded):
        return
    import os

    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it before its first call
    torch.use_deterministic_algorithms(True, warn_only=True)
    extra["deterministic"] = True


def _resolution(value: str, device: str) -> tuple[Any, dict[str, Any]]:
    """The load scale and config changes for --image-scale: a number, or 'auto' (runner.auto_resolution).

    On the CPU 'auto' is an AutoScale that the loader resolves on the first image it decodes,
    so the dataset is read once (the loaded Scene's `image_scale` says what was chosen).
    """
    if value != "auto":
        try:
            return float(value), {}
        except ValueError:
            raise ReconstructError(f"--image-scale must be a number or 'auto', got {value!r}") from None
    from recon.runner import auto_resolution

    return auto_resolution(device)


class _Progress:
    """One status line: iteration, losses, it/s, ETA (a line every 100 steps when not a terminal)."""

    def __init__(self, total: int, start: int) -> None:
        import time

        self.total, self.start, self.t0, self.time = total, start, time.perf_counter(), time.perf_counter
        self.tty = sys.stderr.isatty()

    def __call__(self, record) -> None:
        done = record.iteration - self.start
        rate = done / max(self.time() - self.t0, 1e-9)
        eta = (self.total - record.iteration) / max(rate, 1e-9)
        losses = " ".join(f"{k} {v:.4f}" for k, v in record.losses.items())
        line = f"it {record.iteration}/{self.total}  {losses}  {rate:.1f} it/s  ETA {eta:4.0f} s"
        if record.event:
            print(("\n" if self.tty else "") + f"  {record.event}", file=sys.stderr)
        if self.tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif record.iteration % 100 == 0 or record.iteration == self.total:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def _drive(session, out: Path, iterations: int | None, extra: dict) -> dict:
    from recon import runner

    progress = _Progress(session.config.iterations if iterations is None else session.iteration + iterations, session.iteration)
    try:
        return runner.run(session, out, iterations, on_step=progress, extra=extra)
    finally:
        progress.close()


def _resolutions(session) -> str:
    """'W×H', or 'w×h, then W×H from iteration N' when the session starts on halved images."""
    width, height = session.scene.resolution
    if not session.config.coarse_images:
        return f"{width}×{height}"
    coarse = session.scene.views[0].camera.scaled(0.5)
    return f"{coarse.width}×{coarse.height}, then {width}×{height} from iteration {max(session.config.remesh_at, default=0)}"


def _config_from_args(args: argparse.Namespace, changes: dict[str, Any]):
    """NDSConfig for --seed, --init, --iterations and a device's changes (runner.auto_resolution).

    A given --iterations wins over a device's schedule and keeps remeshing at its 1/4, 1/2, 3/4.
    """
    from recon.methods.config import NDSConfig
    from recon.runner import config_for

    changes = {**changes, "seed": args.seed, "init": args.init}
    if args.checkpoint_every is not None:
        changes["checkpoint_every"] = args.checkpoint_every
    if args.iterations is None:
        return NDSConfig().replace(**changes)
    return config_for(args.iterations, **{k: v for k, v in changes.items() if k not in ("iterations", "remesh_at")})


def cmd_run(args: argparse.Namespace) -> int:
    from recon.data import holdout, load
    from recon.methods.nds import NDSSession

    device = _device(args.device)
    out = Path(args.out)
    if (out / "checkpoint" / "state.safetensors").exists() and not args.overwrite:  # a kill before it: run again
        raise ReconstructError(f"{out}: already holds a run; `reconstruct resume {out}` continues it, --overwrite replaces it")
    scale, changes = _resolution(args.image_scale, device)
    scene = load(args.dataset, image_scale=scale)
    extra: dict = {"image_scale": scene.image_scale}
    _deterministic(args, extra)
    if args.holdout:
        names = holdout.every_nth(scene, args.holdout)
        scene, held = holdout.split(scene, names)
        extra.update(holdout=names, holdout_every=args.holdout)
        print(f"holding out {len(held)} of {len(held) + len(scene.views)} views (every {args.holdout}th): {', '.join(names)}")
    session = NDSSession(scene, _config_from_args(args, changes), device=device, renderer=args.renderer, profile=args.profile)
    log.info("reconstructing %d views at %s on %s (%s renderer)", len(scene.views), _resolutions(session), device, session.renderer.backend)
    _run_and_report(session, out, None, extra)
    return 0


def _heldout_names(record: dict) -> list[str]:
    """Views a run kept out of its optimisation: a list (CLI --holdout) or one name (the GUI)."""
    names = record.get("holdout") or []
    return [names] if isinstance(names, str) else list(names)


def _run_and_report(session, out: Path, iterations: int | None, extra: dict) -> dict:
    record = _drive(session, out, iterations, extra)
    print(f"wrote {out}/mesh.ply ({record['mesh']['faces']} faces), shader, run.json in {record['seconds']:.1f} s")
    if session.profiler.enabled:
        for row in record["profile"]:
            print(f"  {row['stage']:<20} {row['seconds']:9.3f} s  {row['mean_ms']:8.2f} ms/call")
    return record


def _run_record(folder: Path) -> dict:
    from recon.run_checks import check_run_record
    from recon.validate import Invalid

    path = folder / "run.json"
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReconstructError(f"{path}: missing; is {folder} a folder written by `reconstruct run`?") from None
    except (OSError, ValueError) as exc:
        raise ReconstructError(f"{path}: unreadable ({exc})") from None
    try:
        check_run_record(record)
    except Invalid as exc:
        raise ReconstructError(f"{path}: not a run record of this program: {exc}") from None
    return record


def cmd_resume(args: argparse.Namespace) -> int:
    from recon.data import holdout, load
    from recon.methods.nds import NDSSession

    out = Path(args.dir)
    record = _run_record(out)
    device = _device(args.device)
    scale = float(record.get("image_scale", 1.0))
    scene = load(record["dataset"]["source"], image_scale=scale)
    extra = {k: record[k] for k in ("image_scale", "holdout", "holdout_every") if k in record}
    extra["image_scale"] = scale
    _deterministic(args, extra, recorded=record.get("deterministic") is True)
    if _heldout_names(record):  # the same views stay out, and an estimated bbox comes from the rest again
        scene, _ = holdout.split(scene, _heldout_names(record))
    session = NDSSession.load(out / "checkpoint", scene, device=device, renderer=args.renderer, profile=args.profile)
    if args.iterations is not None and session.iteration + args.iterations > session.config.iterations:
        session.config = session.config.replace(iterations=session.iteration + args.iterations)
    if session.done and args.iterations is None:
        print(f"{out}: already finished ({session.iteration} iterations); pass --iterations N to go further")
        return 0
    _run_and_report(session, out, args.iterations, extra)
    return 0


def _load_run(folder: Path):
    """(world mesh, shader, normalization) of a run folder."""
    from recon.mesh import load_mesh
    from recon.shader import load_shader

    mesh = load_mesh(folder / "mesh.ply")
    shader, normalization = load_shader(folder / "shader.json")
    return mesh, shader, normalization


def cmd_eval(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if args.reference:
        from recon.eval import chamfer
        from recon.mesh import read_trimesh

        result = chamfer(read_trimesh(target), read_trimesh(Path(args.reference)))
    elif args.views:
        result = _eval_views(target, Path(args.views), args.image_scale, args.all_views)
    else:
        raise ReconstructError("eval needs --reference REF (a mesh) or --views DATASET (held-out views)")
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for key, value in result.items():
            if key == "per_view":
                for row in value:
                    print(f"  {row['name']:<16} psnr {row['psnr']:7.3f}  iou {row['silhouette_iou']:.4f}")
            else:
                print(f"{key:<18} {value:.6g}" if isinstance(value, float) else f"{key:<18} {value}")
    return 0


def _eval_views(run_dir: Path, dataset: Path, scale: float, all_views: bool = False) -> dict:
    """PSNR (over black) and silhouette IoU of the run's shaded mesh on the views it held out.

    A run made with --holdout (or the GUI's hold-out) records the held-out names in run.json and
    exactly those are compared; `all_views` (or a run without a hold-out) compares every view
    of the dataset, training views included.
    """
    from recon.data import holdout, load
    from recon.eval import psnr, silhouette_iou
    from recon.shaded_views import render_shaded
    from render.renderer import Renderer

    if not run_dir.is_dir():
        raise ReconstructError(f"{run_dir}: not a run folder (pass a folder written by `reconstruct run`)")
    names = [] if all_views else _heldout_names(_run_record(run_dir))
    mesh, shader, normalization = _load_run(run_dir)
    scene = load(dataset, image_scale=scale)
    views = holdout.split(scene, names)[1] if names else scene.views
    if not names:
        log.warning("%s: evaluating all %d views of %s (the run held none out, or --all-views)", run_dir, len(views), dataset)
    renderer = Renderer("auto")
    per_view = []
    for view in views:
        rgb, alpha = render_shaded(mesh, shader, normalization, view.camera, renderer)
        target = view.image * view.mask[..., None]  # both over black
        per_view.append({"name": view.name, "psnr": psnr(rgb, target), "silhouette_iou": silhouette_iou(alpha, view.mask)})
    return {
        "views": len(views),
        "split": "held-out" if names else "all",
        "psnr": float(np.mean([v["psnr"] for v in per_view])),
        "silhouette_iou": float(np.mean([v["silhouette_iou"] for v in per_view])),
        "per_view": per_view,
    }


def cmd_export(args: argparse.Namespace) -> int:
    from recon.export import bake_vertex_colors, export_mesh

    folder = Path(args.dir)
    if not folder.is_dir():
        raise ReconstructError(f"{folder}: not a run folder (pass a folder written by `reconstruct run`)")
    mesh, shader, normalization = _load_run(folder)
    edits = _feature_edits_of_run(folder, mesh, shader, normalization, args.edits) if args.edits else None
    colors = bake_vertex_colors(shader, mesh.vertices, mesh.vertex_normals(), normalization, edits=edits)
    out = Path(args.out) if args.out else folder / f"mesh_colored.{args.format}"
    export_mesh(mesh.vertices.numpy(), mesh.faces.numpy(), out, colors=colors, file_type=args.format)
    what = f"with the material edits of {args.edits}" if edits is not None else "from the shader"
    print(f"wrote {out} ({mesh.num_faces} faces, vertex colours baked {what})")
    return 0


def _feature_edits_of_run(folder: Path, mesh, shader, normalization, edits_file: str):
    """An edits file checked against the run's stored clustering, in shading form."""
    from recon.materials import RunAppearance, feature_edits, load_edits, stored_materials

    materials = stored_materials(folder, RunAppearance(mesh, shader, normalization))
    return feature_edits(materials, load_edits(edits_file, materials), normalization)


def cmd_materials(args: argparse.Namespace) -> int:
    """List the run's materials (clusters of the shader's features), clustering once and storing it."""
    from recon.materials import run_materials

    materials, reused = run_materials(Path(args.dir), k=args.k, samples=args.samples, seed=args.seed, recluster=args.recluster)
    rows = [m.to_dict() for m in materials.info()]
    if args.json:
        print(json.dumps({"k": materials.k, "auto_k": materials.auto_k, "fingerprint": materials.fingerprint,
                          "stored": reused, "materials": rows}, indent=1))
        return 0
    how = "automatic" if materials.auto_k else "given"
    print(f"{materials.k} materials ({how} k; {'stored' if reused else 'clustered now'}, fingerprint {materials.fingerprint})")
    print("id   area    colour")
    for row in rows:
        print(f"{row['id']:<4} {100 * row['area_share']:5.1f} %  {row['hex']}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from recon.data import load

    scene = load(args.dataset, image_scale=args.image_scale)
    if args.json:
        print(json.dumps(_scene_summary(scene), indent=1))
    else:
        _print_scene(scene)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from recon.data import load
    from recon.data.formats import nds

    scene = load(args.src, image_scale=args.image_scale)
    nds.write(scene, None, Path(args.dst))
    print(f"wrote {len(scene.views)} views ({scene.format} → nds) to {args.dst}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Build the demo (once), reconstruct it, and measure the result against its ground truth."""
    from recon.data import load
    from recon.demo import demo_dataset
    from recon.eval import chamfer
    from recon.export import write_run_record
    from recon.mesh import read_trimesh
    from recon.methods.nds import NDSSession

    path = demo_dataset(Path(args.cache) if args.cache else None, rebuild=args.rebuild)
    device = _device(args.device)
    scale, changes = _resolution(args.image_scale, device)
    scene = load(path, image_scale=scale)
    out = Path(args.out)
    extra: dict = {"image_scale": scene.image_scale}
    _deterministic(args, extra)
    session = NDSSession(scene, _config_from_args(args, changes), device=device, renderer=args.renderer, profile=args.profile)
    print(f"demo: {len(scene.views)} views at {_resolutions(session)} from {path}")
    record = _run_and_report(session, out, None, extra)
    figures = chamfer(read_trimesh(out / "mesh.ply"), read_trimesh(path / "gt_mesh.ply"))
    record["chamfer"] = figures
    write_run_record(out / "run.json", record)
    print(
        f"demo: Chamfer-L1 {figures['chamfer']:.5f} world units = {100 * figures['chamfer_rel']:.3f} % of the "
        f"diagonal (accuracy {100 * figures['accuracy_rel']:.3f} %, completeness {100 * figures['completeness_rel']:.3f} %), "
        f"{record['seconds']:.0f} s on {device}"
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from recon.bench import bench_render

    result = bench_render(device=args.device, size=args.size, backend=args.renderer, repeats=args.repeats)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        from recon.bench import format_render_table

        print(format_render_table(result))
    return 0


def cmd_bench_materials(args: argparse.Namespace) -> int:
    from recon.materials.benchmark import bench_materials, format_materials_table

    result = bench_materials(args.run, dataset=args.dataset, k=args.k, views=args.views)
    print(json.dumps(result, indent=1) if args.json else format_materials_table(result))
    return 0


def _viewer_size(text: str) -> tuple[int, int]:
    """'WxH' → (W, H), for `bench viewer --size`."""
    try:
        width, height = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1920x1080, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def cmd_bench_viewer(args: argparse.Namespace) -> int:
    from recon.bench import bench_viewer, format_viewer_table

    if args.frames < 1:
        raise ReconstructError("--frames must be at least 1")
    if args.run is not None and not Path(args.run).is_dir():
        raise ReconstructError(f"--run {args.run}: not a run folder")
    result = bench_viewer(size=args.size, frames=args.frames, run=args.run)
    print(json.dumps(result, indent=1) if args.json else format_viewer_table(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconstruct",
        description="Multi-view 3D reconstruction with neural deferred shading, headless.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        if name in ("info", "convert", "run", "resume", "eval"):
            p.add_argument("--allow-outside-dataset", action="store_true",
                           help="read image files a dataset names outside its folder (absolute, ../ or symlinked paths)")
        return p

    p = add("info", cmd_info, "Describe a dataset: format, views, resolution, bounding box, cameras.")
    p.add_argument("dataset", help="dataset folder or its main file (any supported format)")
    p.add_argument("--json", action="store_true", help="machine-readable: R, t world→camera (OpenCV), K in pixels")
    p.add_argument("--image-scale", type=float, default=1.0, help="resize images on load; K is scaled with them")

    p = add("convert", cmd_convert, "Write any supported dataset out in the NDS folder format (lossless).")
    p.add_argument("src", help="dataset folder or its main file")
    p.add_argument("dst", help="new folder to write (must not exist or be empty)")
    p.add_argument("--image-scale", type=float, default=1.0, help="resize images while converting")

    def add_run_options(p: argparse.ArgumentParser, with_scale: bool = True) -> None:
        from recon.data import CPU_MAX_SIDE

        p.add_argument("--iterations", type=int, help="gradient steps (default 2000, the paper; 1750 on the CPU with --image-scale auto, its last "
                            "stage halved; a given count keeps remeshing at its 1/4, 1/2, 3/4 points)")
        p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: CUDA when available")
        p.add_argument("--renderer", choices=["auto", "gl", "nvdiffrast"], default="auto",
                       help="rasterizer: auto = nvdiffrast on CUDA when installed, else OpenGL (EGL) + RtS splatting")
        p.add_argument("--profile", action="store_true", help="record per-stage times (run.json 'profile' and printed)")
        p.add_argument("--deterministic", action="store_true",
                       help="CUDA: deterministic kernels for the atomic adds (slower); CPU runs are deterministic anyway")
        if with_scale:
            p.add_argument("--image-scale", default="auto",
                           help=f"working resolution; auto = 1 on CUDA; on CPU halved until the long side ≤ {CPU_MAX_SIDE} px, "
                                "and once more until the last remesh (coarse-to-fine images)")
            p.add_argument("--seed", type=int, default=0, help="seeds view/pixel sampling and the shader's initial weights")
            p.add_argument("--init", default="hull", help="initial mesh: hull (visual hull of the masks), sphere, or a mesh file")
            p.add_argument("--checkpoint-every", type=int, metavar="N",
                           help="write the checkpoint with mesh, shader and run.json every N iterations (default 100)")

    p = add("run", cmd_run, "Reconstruct a dataset with Neural Deferred Shading into an output folder.")
    p.add_argument("dataset", help="dataset folder or its main file (any supported format)")
    p.add_argument("--out", required=True, help="run folder: mesh.ply, shader.*, run.json, checkpoint/")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--holdout", type=int, default=0, metavar="N",
                   help="keep every Nth view (0, N, 2N, …) out of the optimisation; run.json names them and "
                        "`reconstruct eval DIR --views DATASET` compares exactly those")
    add_run_options(p)

    p = add("resume", cmd_resume, "Continue a run from its checkpoint (bit-exact), e.g. after Ctrl-C.")
    p.add_argument("dir", help="run folder written by `reconstruct run`")
    add_run_options(p, with_scale=False)

    p = add("eval", cmd_eval, "Chamfer-L1 of a mesh against a reference, or PSNR of a run on held-out views.")
    p.add_argument("target", help="a mesh file (with --reference) or a run folder (with --views)")
    p.add_argument("--reference", help="reference mesh or point cloud (PLY/OBJ/…)")
    p.add_argument("--views", help="dataset whose views the run's shaded mesh is compared with")
    p.add_argument("--image-scale", type=float, default=1.0, help="resize the views before comparing")
    p.add_argument("--all-views", action="store_true",
                   help="with --views: compare every view of DATASET, not only those the run held out")
    p.add_argument("--json", action="store_true")

    p = add("export", cmd_export, "Export a run's mesh with vertex colours baked from its shader.")
    p.add_argument("dir", help="run folder written by `reconstruct run`")
    p.add_argument("--format", choices=["ply", "obj", "glb"], default="ply")
    p.add_argument("--out", help="output file (default DIR/mesh_colored.FORMAT)")
    p.add_argument("--edits", metavar="FILE",
                   help="bake the appearance with these material edits (edits.json; needs `reconstruct materials DIR` first)")

    p = add("materials", cmd_materials, "List a run's materials: clusters of the shader's features (stored beside the run).")
    p.add_argument("dir", help="run folder written by `reconstruct run`")
    p.add_argument("--k", type=int, help="number of materials (default: automatic, best silhouette over 2..8)")
    p.add_argument("--samples", type=int, default=20_000, help="surface samples clustered (area-uniform)")
    p.add_argument("--seed", type=int, default=0, help="seeds the surface sampling and k-means")
    p.add_argument("--recluster", action="store_true", help="cluster again even if a stored clustering fits")
    p.add_argument("--json", action="store_true", help="machine-readable: id, area_share, mean_color (sRGB), hex")

    p = add("demo", cmd_demo, "Reconstruct the bundled demo scene and measure it against its ground truth.")
    p.add_argument("--out", default="demo-run", help="run folder (default ./demo-run)")
    p.add_argument("--cache", help="cache folder for the demo dataset (default: the user cache directory)")
    p.add_argument("--rebuild", action="store_true", help="render the demo dataset again even if cached")
    add_run_options(p)

    p = add("bench", cmd_bench, "Benchmarks that print numbers (never timed tests).")
    bench = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    r = bench.add_parser("render", help="per-stage cost of differentiable rendering at three mesh sizes")
    r.set_defaults(func=cmd_bench)
    r.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    r.add_argument("--renderer", choices=["auto", "gl", "nvdiffrast"], default="auto")
    r.add_argument("--size", type=int, default=512, help="image side in pixels")
    r.add_argument("--repeats", type=int, default=5, help="timed repetitions per stage (median reported)")
    r.add_argument("--json", action="store_true")
    m = bench.add_parser("materials", help="discovered materials vs the demo's ground truth (IoU), edit colour distance")
    m.set_defaults(func=cmd_bench_materials)
    m.add_argument("--run", required=True, help="a run folder of the demo scene")
    m.add_argument("--dataset", help="the demo dataset folder (default: the run's, from run.json)")
    m.add_argument("--k", type=int, help="materials to cluster (default: the number of true materials)")
    m.add_argument("--views", type=int, default=12, help="held-out views for the edit measurement")
    m.add_argument("--json", action="store_true")
    v = bench.add_parser("viewer", help="real-time viewer: frame time and error of each neural shading path")
    v.set_defaults(func=cmd_bench_viewer)
    v.add_argument("--size", type=_viewer_size, default=(512, 512), help="viewport WIDTHxHEIGHT (default 512x512)")
    v.add_argument("--frames", type=int, default=10, help="timed frames per path (median reported)")
    v.add_argument("--run", help="run folder with shader.* and mesh.ply (default: a fresh shader on the demo mesh)")
    v.add_argument("--json", action="store_true")
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command, with dataset files outside their folder allowed only when the user said so."""
    if not getattr(args, "allow_outside_dataset", False):
        return args.func(args)
    from recon.data.paths import allow_outside

    with allow_outside():
        return args.func(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    np.set_printoptions(suppress=True)
    try:
        return _dispatch(args)
    except ReconstructError as exc:  # one line, even when a library's message had several
        message = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        print(f"reconstruct: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("reconstruct: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
