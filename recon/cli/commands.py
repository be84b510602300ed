"""The `reconstruct` subcommands: each takes the parsed arguments and returns an exit code."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from recon.cli.report import BatchProgress, Progress, concavity_lines, print_scene, scene_summary, topology_line
from recon.errors import ReconstructError
from recon.settings import parse_assignments

if TYPE_CHECKING:  # imported where used: `reconstruct info` should not pay for torch and the methods
    from recon.runs import OpenedRun, RunOptions

log = logging.getLogger("recon")


def _image_scale(value: str) -> float | None:
    """--image-scale: a factor, or None for 'auto' (what auto means per device: `recon.runs.resolution`)."""
    if value == "auto":
        return None
    try:
        return float(value)
    except ValueError:
        raise ReconstructError(f"--image-scale must be a number or 'auto', got {value!r}") from None


def run_options(args: argparse.Namespace, dataset: Path, overwrite: bool) -> RunOptions:
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
        config_overrides=parse_assignments(args.set or []),
    )


def _run_and_report(run: OpenedRun) -> dict:
    """Drive an OpenedRun (recon.runs) with a progress line; print what it wrote and, with --profile, where time went."""
    from recon import runs

    session = run.session
    progress = Progress(run.total, session.iteration)
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

    run = open_run(run_options(args, Path(args.dataset), overwrite=args.overwrite))
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
    template = dataclasses.asdict(run_options(args, Path(), overwrite=False))
    run = {k: v for k, v in template.items() if k not in ("dataset", "out", "overwrite", "holdout_last")}
    options = BatchOptions(run, args.address, args.cpus_per_run, args.gpus_per_run, args.max_runs, args.retries)
    print(f"batch: {len(items)} datasets → {args.out}: {', '.join(i.name for i in items)}", file=sys.stderr)
    progress = BatchProgress(len(items))
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
        print(json.dumps(scene_summary(scene), indent=1))
    else:
        print_scene(scene)
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    """A method's settings as `--set` names them: the values "auto" gives on the device, and where a
    fixed --image-scale gives another."""
    from recon.methods.registry import get_method
    from recon.settings import flat_settings

    method = get_method(args.method)
    auto = flat_settings(method.make_config(None, **method.auto_changes(args.device)))
    fixed = flat_settings(method.make_config(None))
    if args.json:
        print(json.dumps({"method": method.name, "device": args.device, "auto": auto, "fixed_scale": fixed}, indent=1))
        return 0
    print(f"{method.title}: settings with --image-scale auto on {args.device}; in brackets where a fixed "
          "--image-scale gives another. Change any with --set NAME=VALUE.")
    width = max(len(name) for name in auto)
    for name, value in auto.items():
        other = "" if fixed[name] == value else f"  ({json.dumps(fixed[name])})"
        print(f"  {name:<{width}}  {json.dumps(value)}{other}")
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
    run = open_run(run_options(args, path, overwrite=True))  # the demo's folder is remade each time
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
    for line in concavity_lines(record["concavity"]):
        print(f"demo: {line}")
    print(f"demo: {topology_line(record['topology'])}")
    return 0


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


def cmd_bench_viewer(args: argparse.Namespace) -> int:
    from recon.bench import bench_viewer, format_viewer_table

    if args.frames < 1:
        raise ReconstructError("--frames must be at least 1")
    if args.run is not None and not Path(args.run).is_dir():
        raise ReconstructError(f"--run {args.run}: not a run folder")
    result = bench_viewer(size=args.size, frames=args.frames, run=args.run)
    print(json.dumps(result, indent=1) if args.json else format_viewer_table(result))
    return 0
