"""`reconstruct`: the engine, headless. Every failure on bad input is one line on stderr and exit 2."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recon.errors import ReconstructError

if TYPE_CHECKING:  # imported where used: `reconstruct info` should not pay for torch and the methods
    from recon.runs import OpenedRun, RunOptions

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


def _image_scale(value: str) -> float | None:
    """--image-scale: a factor, or None for 'auto' (what auto means per device: `recon.runs.resolution`)."""
    if value == "auto":
        return None
    try:
        return float(value)
    except ValueError:
        raise ReconstructError(f"--image-scale must be a number or 'auto', got {value!r}") from None


def _options(args: argparse.Namespace, dataset: Path, overwrite: bool) -> RunOptions:
    """The RunOptions of `run` and `demo` (the GUI builds the same from its Run panel)."""
    from recon.runs import RunOptions

    return RunOptions(
        dataset=dataset,
        out=Path(args.out),
        method=args.method,
        iterations=args.iterations,
        image_scale=_image_scale(args.image_scale),
        seed=args.seed,
        init=args.init,
        device=args.device,
        renderer=args.renderer,
        profile=args.profile,
        holdout_every=getattr(args, "holdout", 0),
        overwrite=overwrite,
        deterministic=args.deterministic,
        checkpoint_every=args.checkpoint_every,
    )


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


def _run_and_report(run: OpenedRun) -> dict:
    """Drive an OpenedRun (recon.runs) with a progress line; print what it wrote and, with --profile, where time went."""
    from recon import runs

    session = run.session
    progress = _Progress(run.total, session.iteration)
    try:
        record = runs.drive(run, on_step=progress)
    finally:
        progress.close()
    took = record["sessions"][-1]["seconds"] if len(record["sessions"]) > len(run.earlier) else 0.0
    whole = f" ({record['seconds']:.1f} s in all)" if run.earlier else ""  # run.json keeps the run's totals
    print(f"wrote {run.folder.mesh_file} ({record['mesh']['faces']} faces), shader, run.json in {took:.1f} s{whole}")
    if session.profiler.enabled:
        for row in record["profile"]:
            print(f"  {row['stage']:<20} {row['seconds']:9.3f} s  {row['mean_ms']:8.2f} ms/call")
    return record


def _levels(run: OpenedRun) -> str:
    from recon.runs import describe_levels

    return describe_levels(run, *run.scene.resolution)


def cmd_run(args: argparse.Namespace) -> int:
    from recon.runs import open_run

    run = open_run(_options(args, Path(args.dataset), overwrite=args.overwrite))
    if run.heldout:
        names = ", ".join(v.name for v in run.heldout)
        total = len(run.heldout) + len(run.scene.views)
        print(f"holding out {len(run.heldout)} of {total} views (every {args.holdout}th): {names}")
    log.info("reconstructing %d views at %s on %s (%s renderer)", len(run.scene.views), _levels(run), run.device,
             run.session.renderer.backend)
    _run_and_report(run)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from recon.runs import ResumeOptions, resume_run

    run = resume_run(ResumeOptions(Path(args.dir), args.device, args.renderer, args.profile, more=args.iterations,
                                   deterministic=args.deterministic))  # fmt: skip
    if run.session.done and args.iterations is None:
        print(f"{run.folder.path}: already finished ({run.session.iteration} iterations); pass --iterations N to go further")
        return 0
    _run_and_report(run)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if args.reference:
        from recon.eval import chamfer
        from recon.mesh import read_trimesh

        result = chamfer(read_trimesh(target), read_trimesh(Path(args.reference)))
    elif args.views:
        from recon.view_eval import evaluate_run_views

        result = evaluate_run_views(target, Path(args.views), args.image_scale, args.all_views)
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


def cmd_export(args: argparse.Namespace) -> int:
    from recon.export import TEXTURED_FORMATS
    from recon.run_export import export_run

    if args.texture_size is not None and not 16 <= args.texture_size <= 16384:
        raise ReconstructError(f"--texture-size {args.texture_size}: give 16 to 16384 texels")
    if args.texture and args.format == "ply":
        raise ReconstructError("--texture: PLY has no texture (use --format glb or obj, or vertex colours)")
    written, faces = export_run(args.dir, args.format, args.out, args.edits, args.texture, args.texture_size)
    what = f"with the material edits of {args.edits}" if args.edits else "from the shader"
    textured = args.texture if args.texture is not None else args.format in TEXTURED_FORMATS
    kind = "a texture atlas" if textured else "vertex colours"
    print(f"wrote {', '.join(str(p) for p in written)} ({faces} faces, {kind} baked {what})")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    """One Ray task per dataset (recon.batch); a summary table and OUT/batch.json; exit 1 if any failed."""
    import dataclasses

    from recon.batch import BatchOptions, discover, format_table, run_batch, write_summary

    if args.cpus_per_run <= 0 or args.gpus_per_run < 0 or args.retries < 0 or (args.max_runs is not None and args.max_runs < 1):
        raise ReconstructError("--cpus-per-run must be > 0, --gpus-per-run and --retries ≥ 0, --max-runs ≥ 1")
    items = discover([Path(s) for s in args.sources], Path(args.out))
    template = dataclasses.asdict(_options(args, Path(), overwrite=False))
    run = {k: v for k, v in template.items() if k not in ("dataset", "out", "overwrite", "holdout_last")}
    options = BatchOptions(run, args.address, args.cpus_per_run, args.gpus_per_run, args.max_runs, args.retries)
    print(f"batch: {len(items)} datasets → {args.out}: {', '.join(i.name for i in items)}", file=sys.stderr)
    progress = _BatchProgress(len(items))
    try:
        rows = run_batch(items, options, on_progress=progress)
    finally:
        progress.close()
    path = write_summary(args.out, rows, options)
    if args.json:
        print(path.read_text())
    else:
        print(format_table(rows))
        print(f"wrote {path}")
    return 0 if all(r.status != "failed" for r in rows) else 1


class _BatchProgress:
    """Runs done/running and each running task's iteration and ETA: one redrawn line on a terminal,
    a plain line per change otherwise."""

    def __init__(self, count: int) -> None:
        import time

        self.count, self.time, self.tty = count, time.perf_counter, sys.stderr.isatty()
        self.first: dict[str, tuple[float, int]] = {}
        self.last: tuple = ()

    def __call__(self, state: dict) -> None:
        finished = state.pop("_finished", [])
        now = self.time()
        parts, running = [], [name for name in sorted(state) if name not in finished]
        for name in running:
            entry = state[name]
            t0, i0 = self.first.setdefault(name, (now, entry["iteration"]))
            rate = (entry["iteration"] - i0) / max(now - t0, 1e-9)
            eta = f"{(entry['total'] - entry['iteration']) / rate:.0f} s" if rate > 0 else "…"
            parts.append(f"{name} {entry['iteration']}/{entry['total']} ETA {eta}")
        line = f"batch: {len(finished)}/{self.count} finished, {len(parts)} running" + (": " + "; ".join(parts) if parts else "")
        if self.tty:
            print("\r\033[K" + line, end="", file=sys.stderr, flush=True)
        elif (tuple(finished), tuple(running)) != self.last:  # a run started or ended
            print(line, file=sys.stderr, flush=True)
        self.last = (tuple(finished), tuple(running))

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)


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
    from recon.demo import demo_dataset, load_recipe
    from recon.demo.measure import concavity_figures
    from recon.eval import REFERENCE_MESH, chamfer, topology
    from recon.export import write_run_record
    from recon.mesh import read_trimesh
    from recon.runs import open_run

    recipe = load_recipe(scene=args.scene)
    path = demo_dataset(Path(args.cache) if args.cache else None, rebuild=args.rebuild, recipe=recipe)
    run = open_run(_options(args, path, overwrite=True))  # the demo's folder is remade each time
    print(f"demo: {recipe['name']}, {len(run.scene.views)} views at {_levels(run)} from {path}")
    record = _run_and_report(run)
    built, truth = read_trimesh(run.folder.mesh_file), read_trimesh(path / REFERENCE_MESH)
    figures = chamfer(built, truth)
    record["chamfer"] = figures
    record["concavity"] = concavity_figures(recipe, built, truth)
    record["topology"] = {"reconstruction": topology(built), "truth": topology(truth)}
    write_run_record(run.folder.record_file, record)
    print(
        f"demo: Chamfer-L1 {figures['chamfer']:.5f} world units = {100 * figures['chamfer_rel']:.3f} % of the "
        f"diagonal (accuracy {100 * figures['accuracy_rel']:.3f} %, completeness {100 * figures['completeness_rel']:.3f} %), "
        f"{record['seconds']:.0f} s on {run.device}"
    )
    for line in _concavity_lines(record["concavity"]):
        print(f"demo: {line}")
    print(f"demo: {_topology_line(record['topology'])}")
    return 0


def _topology_line(figures: dict) -> str:
    """`reconstruct demo`'s genus check: Chamfer barely sees a filled hole."""
    built, truth = figures["reconstruction"], figures["truth"]
    genus = "unknown (not watertight)" if built["genus"] is None else str(built["genus"])
    verdict = "right" if built["genus"] == truth["genus"] and built["components"] == truth["components"] else "WRONG"
    return (
        f"topology {verdict}: genus {genus} in {built['components']} component(s) against the truth's "
        f"{truth['genus']} in {truth['components']}"
    )


def _concavity_lines(figures: dict) -> list[str]:
    """`reconstruct demo`'s summary of recon.demo.measure.concavity_figures."""
    far = figures["far_surface"]
    lines = [
        f"{100 * far['far_fraction']:.1f} % of the true surface is over {100 * far['threshold_rel']:g} % of the diagonal "
        f"away, {100 * far['far_outside_share']:.0f} % of that with the reconstruction outside it (filled), holding "
        f"{100 * far['far_error_share']:.0f} % of the completeness error; median error elsewhere {100 * far['near_median_rel']:.3f} %"
    ]
    regions = sorted(figures["primitives"].items(), key=lambda item: -item[1]["share"])
    lines.append(
        "error by primitive (share of the Chamfer error, of the true area, the reconstruction's mean offset, "
        "+ outside): " + "; ".join(
            f"{name} {100 * r['share']:.0f} %, {100 * r['area']:.0f} %, {100 * r['offset_rel']:+.3f} %" for name, r in regions
        )
    )
    for name, cavity in figures["cavities"].items():
        lines.append(
            f"{name} carved to {100 * cavity['carved']:.1f} % of its depth {cavity['depth']:.3f} at the deepest point, "
            f"left filled by {100 * cavity['mean_fill']:.1f} % of it on average"
        )
    return lines


def cmd_bench(args: argparse.Namespace) -> int:
    from recon.bench import bench_render

    result = bench_render(
        device=args.device,
        size=args.size,
        backend=args.renderer,
        repeats=args.repeats,
        peers=tuple(dict.fromkeys(args.peer)),
        shader_precision=args.shader_precision,
    )
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
        from recon.methods.registry import DEFAULT, method_names

        p.add_argument("--iterations", type=int, help="gradient steps; the method's schedule keeps its fractions. NDS: 2000, "
                            "the paper (1750 on the CPU with --image-scale auto, its last stage halved, two views a step, the vertex step falling to a tenth; remeshing at 1/4, "
                            "1/2, 3/4); rts-sdf: 1750, the grid upsampled at 80 %%; dvr: 20000 (8000 on the CPU)")
        p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: CUDA when available")
        p.add_argument("--renderer", choices=["auto", "gl", "nvdiffrast"], default="auto",
                       help="rasterizer: auto = nvdiffrast on CUDA when installed, else OpenGL (EGL) + RtS splatting")
        p.add_argument("--profile", action="store_true", help="record per-stage times (run.json 'profile' and printed)")
        p.add_argument("--deterministic", action="store_true",
                       help="CUDA: deterministic kernels for the atomic adds (slower); CPU runs are deterministic anyway")
        if with_scale:
            p.add_argument("--method", choices=method_names(), default=DEFAULT,
                           help="reconstruction method (recon.methods.registry); resume finds it in run.json")
            p.add_argument("--image-scale", default="auto",
                           help=f"working resolution; auto = 1 on CUDA; on CPU halved until the long side ≤ {CPU_MAX_SIDE} px, "
                                "and once more until the last remesh (coarse-to-fine images); NDS also shades half "
                                "the pixels, in tiles drawn where the residual is, with a shader half as wide whose positional "
                                "encoding joins at the second remesh (concavities are carved first)")
            p.add_argument("--seed", type=int, default=0, help="seeds view/pixel sampling and the shader's initial weights")
            p.add_argument("--init", default="hull", help="initial mesh: hull (visual hull of the masks), sphere, or a mesh file")
            p.add_argument("--checkpoint-every", type=int, metavar="N",
                           help="write the checkpoint with mesh, shader and run.json every N iterations (default 100)")

    p = add("run", cmd_run, "Reconstruct a dataset (Neural Deferred Shading by default) into an output folder.")
    p.add_argument("dataset", help="dataset folder or its main file (any supported format)")
    p.add_argument("--out", required=True, help="run folder: mesh.ply, shader.*, run.json, checkpoint/")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--holdout", type=int, default=0, metavar="N",
                   help="keep every Nth view (0, N, 2N, …) out of the optimisation; run.json names them and "
                        "`reconstruct eval DIR --views DATASET` compares exactly those")
    add_run_options(p)

    p = add("batch", cmd_batch, "Reconstruct a collection: one Ray task per dataset, on this machine or a Ray cluster "
            "(needs the cluster extra). Rerunning skips finished runs and resumes interrupted ones.")
    p.add_argument("sources", nargs="+", help="dataset folders, or folders whose subfolders are datasets")
    p.add_argument("--out", required=True, help="the run folders go to OUT/<dataset name>/; OUT/batch.json sums them up")
    p.add_argument("--holdout", type=int, default=0, metavar="N", help="as for `run`: every Nth view held out (PSNR in the summary)")
    p.add_argument("--address", help="Ray cluster: auto (the one `ray start` made here) or ray://HOST:PORT; default a local instance")
    p.add_argument("--cpus-per-run", type=float, default=1.0, metavar="C", help="CPUs each run reserves (torch threads; default 1)")
    p.add_argument("--gpus-per-run", type=float, default=0.0, metavar="G", help="GPUs each run reserves (default 0; use with --device cuda)")
    p.add_argument("--max-runs", type=int, metavar="N", help="at most N runs at a time (default: as many as the resources allow)")
    p.add_argument("--retries", type=int, default=1, metavar="R", help="times a run whose worker died is retried from its checkpoint (default 1)")
    p.add_argument("--json", action="store_true", help="print batch.json instead of the table")
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

    p = add("export", cmd_export, "Export a run's mesh with its shader's colours baked into a texture atlas (GLB, OBJ) "
            "or vertex colours (PLY).")
    p.add_argument("dir", help="run folder written by `reconstruct run`")
    p.add_argument("--format", choices=["ply", "obj", "glb"], default="ply")
    p.add_argument("--out", help="output file (default DIR/mesh_colored.FORMAT); OBJ writes its .mtl and .png beside it")
    colours = p.add_mutually_exclusive_group()
    colours.add_argument("--texture", dest="texture", action="store_true", default=None,
                         help="bake a UV texture atlas (the default for GLB and OBJ: what Blender, game engines and trimesh show)")
    colours.add_argument("--vertex-colors", dest="texture", action="store_false",
                         help="one colour per vertex instead (the default for PLY)")
    p.add_argument("--texture-size", type=int, metavar="N",
                   help="texture side in texels (default: about 16 texels per face, a power of two in 256..4096)")
    p.add_argument("--edits", metavar="FILE",
                   help="bake the appearance with these material edits (edits.json; needs `reconstruct materials DIR` first)")

    p = add("materials", cmd_materials, "List a run's materials: clusters of the shader's features (stored beside the run).")
    p.add_argument("dir", help="run folder written by `reconstruct run`")
    p.add_argument("--k", type=int, help="number of materials (default: automatic, best silhouette over 2..8)")
    p.add_argument("--samples", type=int, default=20_000, help="surface samples clustered (area-uniform)")
    p.add_argument("--seed", type=int, default=0, help="seeds the surface sampling and k-means")
    p.add_argument("--recluster", action="store_true", help="cluster again even if a stored clustering fits")
    p.add_argument("--json", action="store_true", help="machine-readable: id, area_share, mean_color (sRGB), hex")

    from resources import DEFAULT_DEMO_SCENE, DEMO_SCENES

    p = add("demo", cmd_demo, "Reconstruct a bundled demo scene and measure it against its ground truth: Chamfer, "
            "how well its concavities are carved, which primitive holds what share of the error, and its genus.")
    p.add_argument("--scene", choices=sorted(DEMO_SCENES), default=DEFAULT_DEMO_SCENE,
                   help="pot: a glazed pot with a bowl, a groove, a handle and a fin (default); part: a machined block "
                        "with flat faces, two deep slots and a drilled boss; torus: a thick ring whose hole only 8 of "
                        "the 40 views see through (the topology benchmark: its visual hull has genus 4, whose webs NDS "
                        "cuts on the CPU; try --init sphere too); checker: the pot with a "
                        "checkerboard in its clay (a texture the shader has to hold)")
    p.add_argument("--out", default="demo-run", help="run folder (default ./demo-run)")
    p.add_argument("--cache", help="cache folder for the demo datasets, one per scene (default: the user cache directory)")
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
    r.add_argument(
        "--peer",
        action="append",
        choices=["mitsuba"],  # recon.bench.PEERS, without importing torch to build the parser
        default=[],
        help="also time this renderer's step on the same meshes, camera and size, and report how many times "
        "faster ours is (repeatable; mitsuba: Mitsuba 3's llvm_ad_rgb, pip install 'reconstruct[peers]'; "
        "skipped with the reason when it cannot run)",
    )
    r.add_argument(
        "--shader-precision",
        choices=["auto", "float32", "bfloat16"],  # recon.precision.PRECISIONS
        default="auto",
        help="the shaded task's matrix products, as a run's shader_precision (auto, the training default: "
        "bfloat16 on CPUs with native bfloat16, else float32)",
    )
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
