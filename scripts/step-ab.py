"""Interleaved A/B of one NDS step from a run's checkpoint, between variants of its settings.

    python scripts/step-ab.py RUN_DIR [STEPS_PER_ROUND] [ROUNDS] [VARIANT_JSON ...]

Resumes a copy of RUN_DIR (the run itself is untouched) and times STEPS_PER_ROUND steps of each
variant in turn, ROUNDS times, so drifts of the machine's speed hit every variant alike; prints
the median ms per step. A variant is a JSON object of NDS settings set on the resumed session
(`{"shading_tile": 0, "shading_fraction": 0.75}`; `shader_precision` re-wraps the shader); with
none given, the shader's products in float32 against bfloat16. The image level (coarse or full)
is the checkpoint's; `"coarse": true` in a variant's object puts the session on the halved
images (for a checkpoint of the last stage: that mesh on the coarse level).
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from recon.precision import resolve_precision, with_precision
from recon.runs import ResumeOptions, resume_run

PRECISIONS = ['{"shader_precision": "float32"}', '{"shader_precision": "bfloat16"}']


def _apply(session, variant: dict, base) -> None:
    """Set `variant`'s settings on `session` (from the checkpoint's config `base`)."""
    changes = {k: v for k, v in variant.items() if k != "coarse"}
    session.config = base.replace(**changes)
    precision = resolve_precision(session.config.shader_precision, session.device)
    session.precision = precision
    session.training_shader = with_precision(session.shader, precision, session.device)
    session.iteration = 1 if variant.get("coarse") else 10**6  # no remesh falls in the few steps timed


def main() -> None:
    run = Path(sys.argv[1])
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    variants = [json.loads(text) for text in (sys.argv[4:] or PRECISIONS)]
    copy = Path(tempfile.mkdtemp()) / run.name
    shutil.copytree(run, copy)
    session = resume_run(ResumeOptions(out=copy, device="cpu")).session
    base = session.config.replace(iterations=10**9)
    times: list[list[float]] = [[] for _ in variants]
    for _ in range(rounds):
        for variant, spent in zip(variants, times):
            _apply(session, variant, base)
            session.step()  # warm: the first step after a switch is not counted
            start = time.perf_counter()
            for _ in range(steps):
                session.step()
            spent.append(1000 * (time.perf_counter() - start) / steps)
    camera = session.cameras[0]
    print(f"{session.mesh.num_faces} faces, images {camera.width}×{camera.height} (the last variant's level)")
    for variant, spent in zip(variants, times):
        print(f"{json.dumps(variant):60s} {statistics.median(spent):7.1f} ms/step  (rounds: {', '.join(f'{v:.0f}' for v in spent)})")
    shutil.rmtree(copy.parent)


if __name__ == "__main__":
    main()
