"""One rts-sdf run on a dataset with a ground-truth mesh: Chamfer before and after, seconds, topology.

    python scripts/measure_rts_sdf.py DATASET ITERATIONS adam|sgd LR ['{"coarse_images": true, ...}']

ITERATIONS keeps the upsampling at the default fraction unless the JSON names `upsample_at`
(then give `"iterations"` there too and pass 0). On a `reconstruct demo` dataset (it holds
demo_scene.json) the concavity figures of `reconstruct demo` are added. Prints one JSON line: the
README's SGD-against-Adam tables.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import trimesh

from recon.data import load
from recon.demo import carved_percent
from recon.eval import REFERENCE_MESH, chamfer, topology
from recon.methods.rts_sdf import RtsSdfSession, rts_sdf_config


def main() -> None:
    path, n, optimizer, lr = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    changes = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    scene = load(path, image_scale=float(changes.pop("scale", 1.0)))
    config = rts_sdf_config(n or None, optimizer=optimizer, lr_grid=lr, **changes)
    session = RtsSdfSession(scene, config, renderer="gl")
    gt = trimesh.load(path / REFERENCE_MESH, process=False)

    def built() -> trimesh.Trimesh:
        vertices, faces = session.mesh_arrays()
        centre, scale = session.normalization
        return trimesh.Trimesh(vertices / scale + centre, faces, process=False)

    before = 100 * chamfer(built(), gt)["chamfer_rel"]
    start = time.perf_counter()
    for _ in session.run():
        pass
    seconds = time.perf_counter() - start
    mesh = built()
    result = {"optimizer": optimizer, "lr": lr, "changes": changes, "iterations": config.iterations,
              "upsample_at": list(config.upsample_at), "start": round(before, 3),
              "end": round(100 * chamfer(mesh, gt)["chamfer_rel"], 3), "seconds": round(seconds),
              "topology": topology(mesh), "faces": len(mesh.faces)}  # fmt: skip
    result["carved"] = carved_percent(path, mesh, gt)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
