"""`reconstruct`: the engine, headless. Every failure on bad input is one line on stderr and exit 2."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

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
    from recon.data import load
    from recon.demo import demo_dataset

    path = demo_dataset(Path(args.cache) if args.cache else None, rebuild=args.rebuild)
    scene = load(path)
    _print_scene(scene)
    print(f"demo dataset ready at {path}")
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
        return p

    p = add("info", cmd_info, "Describe a dataset: format, views, resolution, bounding box, cameras.")
    p.add_argument("dataset", help="dataset folder or its main file (any supported format)")
    p.add_argument("--json", action="store_true", help="machine-readable: R, t world→camera (OpenCV), K in pixels")
    p.add_argument("--image-scale", type=float, default=1.0, help="resize images on load; K is scaled with them")

    p = add("convert", cmd_convert, "Write any supported dataset out in the NDS folder format (lossless).")
    p.add_argument("src", help="dataset folder or its main file")
    p.add_argument("dst", help="new folder to write (must not exist or be empty)")
    p.add_argument("--image-scale", type=float, default=1.0, help="resize images while converting")

    p = add("demo", cmd_demo, "Build (first time) and describe the bundled demo scene.")
    p.add_argument("--cache", help="cache folder (default: the user cache directory)")
    p.add_argument("--rebuild", action="store_true", help="render the demo again even if cached")

    p = add("bench", cmd_bench, "Benchmarks that print numbers (never timed tests).")
    bench = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    r = bench.add_parser("render", help="per-stage cost of differentiable rendering at three mesh sizes")
    r.set_defaults(func=cmd_bench)
    r.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    r.add_argument("--renderer", choices=["auto", "gl", "nvdiffrast"], default="auto")
    r.add_argument("--size", type=int, default=512, help="image side in pixels")
    r.add_argument("--repeats", type=int, default=5, help="timed repetitions per stage (median reported)")
    r.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    np.set_printoptions(suppress=True)
    try:
        return args.func(args)
    except ReconstructError as exc:
        print(f"reconstruct: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("reconstruct: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
