"""One NDS run at the CPU defaults, some settings changed: seconds, rollbacks, crossings, Chamfer, carving.

    python scripts/measure_nds.py DATASET OUT ['{"shading_tile": 0, "shading_fraction": 0.75}']

Runs `reconstruct run DATASET --out OUT --device cpu` with the JSON's NDS settings set last
(`RunOptions.config_overrides`), then prints one JSON line: optimisation seconds, rollbacks,
final faces, crossing pairs left in mesh.ply, the final vertex step against the schedule's, the
seconds of each profiled stage (as `--profile` records them), and where DATASET holds a ground
truth (`recon.eval.reference_mesh`) Chamfer in % of the diagonal and the topology; on a `reconstruct demo`
dataset also how deep each tool is carved. The README's NDS tables.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import trimesh

from recon.demo import carved_percent
from recon.eval import chamfer, reference_mesh, topology
from recon.mesh import load_mesh
from recon.mesh.checks import self_intersecting_pairs
from recon.runs import RunOptions, drive, open_run


def main() -> None:
    dataset, out = Path(sys.argv[1]), Path(sys.argv[2])
    overrides = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    logging.basicConfig(level=logging.WARNING)
    run = open_run(RunOptions(dataset=dataset, out=out, device="cpu", overwrite=True, profile=True, config_overrides=overrides))
    events: list[str] = []
    start = time.perf_counter()
    drive(run, on_step=lambda record: events.append(record.event or ""))
    seconds = time.perf_counter() - start
    mesh = load_mesh(run.folder.mesh_file)
    result = {
        "settings": overrides,
        "seconds": round(seconds),
        "rollbacks": sum("rollback" in event for event in events),
        "faces": mesh.num_faces,
        "crossing_pairs": len(self_intersecting_pairs(mesh.vertices, mesh.faces)),
        "vertex_step": [run.session.lr_vertices, run.session.lr_schedule],
        "profile_s": {row["stage"]: round(row["seconds"], 1) for row in json.loads(run.folder.record_file.read_text())["profile"]},
    }
    reference = reference_mesh(dataset)
    if reference is not None:
        found, truth = trimesh.load(run.folder.mesh_file, process=False), trimesh.load(reference, process=False)
        result["chamfer_percent"] = round(100 * chamfer(found, truth)["chamfer_rel"], 3)
        result["topology"] = topology(found)
        result["carved_percent"] = carved_percent(dataset, found, truth)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
