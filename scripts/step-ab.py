"""Interleaved A/B of one NDS step from a run's checkpoint: the shader's products in float32 and bfloat16.

    python scripts/step-ab.py RUN_DIR [STEPS_PER_ROUND] [ROUNDS]

Resumes a copy of RUN_DIR (the run itself is untouched) and times STEPS_PER_ROUND steps of each
variant in turn, ROUNDS times, so drifts of the machine's speed hit every variant alike; prints
the median ms per step. The image level (coarse or full) is the checkpoint's.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from recon.precision import with_precision
from recon.runs import ResumeOptions, resume_run


def main() -> None:
    run, steps, rounds = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 10, int(sys.argv[3]) if len(sys.argv) > 3 else 3
    copy = Path(tempfile.mkdtemp()) / run.name
    shutil.copytree(run, copy)
    session = resume_run(ResumeOptions(out=copy, device="cpu")).session
    session.config = session.config.replace(iterations=10**9)
    times: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for _ in range(rounds):
        for precision in times:
            session.precision = precision
            session.training_shader = with_precision(session.shader, precision, session.device)
            session.step()  # warm: the first step after a switch is not counted
            start = time.perf_counter()
            for _ in range(steps):
                session.step()
            times[precision].append(1000 * (time.perf_counter() - start) / steps)
    camera = session.cameras[0]
    print(f"iteration {session.iteration}, {session.mesh.num_faces} faces, images {camera.width}×{camera.height}")
    for precision, values in times.items():
        print(f"shader {precision:8s}  {statistics.median(values):7.1f} ms/step  (rounds: {', '.join(f'{v:.0f}' for v in values)})")
    shutil.rmtree(copy.parent)


if __name__ == "__main__":
    main()
