"""What the CLI prints: a dataset's summary, progress lines, and the demo's measurements."""

from __future__ import annotations

import sys


def scene_summary(scene) -> dict:
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


def print_scene(scene) -> None:
    width, height = scene.resolution
    lo, hi = scene.bbox
    fmt = lambda a: "[" + ", ".join(f"{x:.4g}" for x in a) + "]"  # noqa: E731
    print(f"format      {scene.format}  ({scene.source})")
    print(f"views       {len(scene.views)} at {width}×{height}")
    print(f"bbox        min {fmt(lo)}  max {fmt(hi)}  ({scene.bbox_source})")
    print("cameras     name: centre (world)")
    for v in scene.views:
        print(f"  {v.name}: {fmt(v.camera.center)}")


class Progress:
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


class BatchProgress:
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


def topology_line(figures: dict) -> str:
    """`reconstruct demo`'s genus check: Chamfer barely sees a filled hole."""
    built, truth = figures["reconstruction"], figures["truth"]
    genus = "unknown (not watertight)" if built["genus"] is None else str(built["genus"])
    verdict = "right" if built["genus"] == truth["genus"] and built["components"] == truth["components"] else "WRONG"
    return (
        f"topology {verdict}: genus {genus} in {built['components']} component(s) against the truth's "
        f"{truth['genus']} in {truth['components']}"
    )


def concavity_lines(figures: dict) -> list[str]:
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
