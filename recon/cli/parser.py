"""The `reconstruct` command line: subcommands, their options and `--help` texts."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from recon.cli.commands import (
    cmd_batch,
    cmd_bench,
    cmd_bench_materials,
    cmd_bench_viewer,
    cmd_convert,
    cmd_demo,
    cmd_eval,
    cmd_export,
    cmd_info,
    cmd_materials,
    cmd_resume,
    cmd_run,
    cmd_settings,
)
from recon.methods.registry import DEFAULT, method_names


def viewer_size(text: str) -> tuple[int, int]:
    """'WxH' → (W, H), for `bench viewer --size`."""
    try:
        width, height = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1920x1080, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


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
            p.add_argument("--set", action="append", metavar="NAME=VALUE",
                           help="change one of the method's settings, after everything else (repeatable): a value is "
                                "read as JSON, else as text; NAME.FIELD reaches into a group (shader.hidden_h=256). "
                                "Saved in run.json. `reconstruct settings` lists them. For accuracy with NDS: --set "
                                "views_per_step=2 --set weight_laplacian=20, about 40 %% more time (README *Setting by name*)")

    p = add("settings", cmd_settings, "List a method's settings by the names --set takes, with the values "
            "--image-scale auto gives on a device.")
    p.add_argument("--method", choices=method_names(), default=DEFAULT, help=f"whose settings (default: {DEFAULT})")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="the device whose 'auto' values to show (default cpu)")
    p.add_argument("--json", action="store_true", help='machine-readable: {"method", "device", "auto", "fixed_scale"}')

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
    v.add_argument("--size", type=viewer_size, default=(512, 512), help="viewport WIDTHxHEIGHT (default 512x512)")
    v.add_argument("--frames", type=int, default=10, help="timed frames per path (median reported)")
    v.add_argument("--run", help="run folder with shader.* and mesh.ply (default: a fresh shader on the demo mesh)")
    v.add_argument("--json", action="store_true")
    return parser
