"""`python -m app.measure`: how much the live view slows a reconstruction (numbers, not a test).

Runs the real main window on the demo at the CPU default working resolution, once per live-view
rate, alternating, and reports seconds per iteration measured in the worker thread between the
first steps after warm-up and the last, so session set-up and output writing are excluded.
The viewport stays in neural mode, so every snapshot is shaded with the MLP on the CPU path.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("app.measure")


def _one_run(window, app, iterations: int, rate: float, warmup: int) -> float:
    """Seconds per iteration of one run at `rate` snapshots per second (0 = live view off)."""
    panel = window.run_panel
    panel.iterations.setValue(iterations)
    panel.set_live_rate(rate)
    panel.set_out(Path(tempfile.mkdtemp(prefix="measure-")) / "run")
    frames, jobs = window.viewport.frames, window.viewport.shade_jobs
    window.start_run()
    worker = window.run.worker
    while window.running:
        app.processEvents()
        time.sleep(0.002)
    clock = worker.step_clock
    if len(clock) <= warmup + 1:
        raise RuntimeError(f"the run ended after {len(clock)} steps: {window.last_error}")
    seconds = (clock[-1] - clock[warmup]) / (len(clock) - 1 - warmup)
    log.info("live view %g/s: %.4f s/it (%d frames painted, %d neural shadings on the CPU)",
             rate, seconds, window.viewport.frames - frames, window.viewport.shade_jobs - jobs)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.measure", description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5, help="steps ignored at the start of each run")
    parser.add_argument("--rates", default="0,2", help="live-view rates to compare (snapshots per second)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per rate, interleaved")
    parser.add_argument("--dataset", help="dataset (default: the demo scene)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    report = logging.StreamHandler(sys.stdout)  # the numbers are this tool's output
    report.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(report)
    log.setLevel(logging.INFO)
    log.propagate = False

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from recon.demo import demo_dataset

    app = QApplication.instance() or QApplication([sys.argv[0]])
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "measure.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings)
    window.resize(1280, 820)
    window.show()
    window.open_dataset(Path(args.dataset) if args.dataset else demo_dataset())
    while window.scene is None:
        app.processEvents()
        if window.last_error:
            raise SystemExit(window.last_error)
        time.sleep(0.01)
    rates = [float(r) for r in args.rates.split(",")]
    results: dict[float, list[float]] = {r: [] for r in rates}
    for _ in range(args.repeats):
        for rate in rates:
            results[rate].append(_one_run(window, app, args.iterations, rate, args.warmup))
    info = window.run_info
    log.info("%s views at %s, device %s, %d iterations per run, viewport %d×%d, shading path %s",
             info.get("views"), info.get("resolution"), info.get("device"), args.iterations,
             window.viewport.width(), window.viewport.height(), window.viewport.pipe.path if window.viewport.pipe else "none")
    base = statistics.median(results[rates[0]])
    for rate in rates:
        value = statistics.median(results[rate])
        log.info("  %g/s: median %.4f s/it (%+.1f %% vs %g/s)", rate, value, 100 * (value / base - 1), rates[0])
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
