"""One rts-sdf run on a dataset with a ground-truth mesh: Chamfer before and after, seconds, genus.

    python scripts/measure_rts_sdf.py DATASET ITERATIONS sgd|adam LR ['{"resolutions": [32, 48]}']

Prints Chamfer (% of the diagonal) every 50 steps and one JSON line at the end (the README's
SGD-against-Adam numbers: the 12-view 64 px demo of `tests/recon/conftest.py`, 200 iterations).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import trimesh

from recon.data import load
from recon.eval import chamfer
from recon.methods.rts_sdf import RtsSdfSession, rts_sdf_config


def main() -> None:
    path, n, optimizer, lr = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    changes = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    scene = load(path, image_scale=float(changes.pop("scale", 1.0)))
    session = RtsSdfSession(scene, rts_sdf_config(n, optimizer=optimizer, lr_grid=lr, **changes), renderer="gl")
    gt = trimesh.load(Path(path) / "gt_mesh.ply", process=False)
    start = time.time()

    def measure() -> tuple[float, trimesh.Trimesh]:
        vertices, faces = session.mesh_arrays()
        centre, scale = session.normalization
        mesh = trimesh.Trimesh(vertices / scale + centre, faces, process=False)
        return 100 * chamfer(mesh, gt)["chamfer_rel"], mesh

    before, _ = measure()
    for record in session.run():
        if record.iteration % 50 == 0:
            print(record.iteration, round(measure()[0], 3), {k: round(v, 4) for k, v in record.losses.items()}, flush=True)
    after, mesh = measure()
    print(json.dumps({"optimizer": optimizer, "lr": lr, "iterations": n, "start": round(before, 3), "end": round(after, 3),
                      "seconds": round(time.time() - start), "watertight": bool(mesh.is_watertight),
                      "euler": int(mesh.euler_number), "faces": len(mesh.faces)}))


if __name__ == "__main__":
    main()
