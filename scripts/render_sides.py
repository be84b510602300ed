"""A run's mesh, plain (headlight Lambert) shading, from four sides: how the README looks at a surface.

    python scripts/render_sides.py RUN_OR_MESH DATASET OUT.png [--size 320] [--elevation 20]

Chamfer averages creases and wrinkles away; a plain-shaded look from four sides does not. "Up" is
the dataset's camera ring's (as the desktop app frames it); the four views stand round the mesh's
bounding box at 90° steps, `--elevation` degrees above its middle.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from app.orbit import scene_up
from recon.data import load
from recon.mesh import load_mesh
from render.camera import Camera
from render.renderer import Renderer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mesh", type=Path, help="a run folder (its mesh.ply) or a mesh file")
    parser.add_argument("dataset", help="the dataset the run used: its cameras give 'up'")
    parser.add_argument("out", type=Path, help="PNG to write: the four views side by side")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--elevation", type=float, default=20.0)
    args = parser.parse_args()

    path = args.mesh / "mesh.ply" if args.mesh.is_dir() else args.mesh
    mesh = load_mesh(path)
    up = scene_up([view.camera for view in load(args.dataset).views])
    vertices = mesh.vertices.double().numpy()
    lo, hi = vertices.min(0), vertices.max(0)
    centre, radius = (lo + hi) / 2, np.linalg.norm(hi - lo) / 2
    side = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side)
    renderer = Renderer("gl", "cpu")

    def headlight(position: torch.Tensor, normal: torch.Tensor, view_dir: torch.Tensor) -> torch.Tensor:
        grey = 0.12 + 0.88 * (normal * view_dir).sum(-1, keepdim=True).clamp(min=0)
        return grey.expand(-1, 3)

    tiles = []
    elevation = np.radians(args.elevation)
    for k in range(4):
        azimuth = k * np.pi / 2
        around = np.cos(azimuth) * side + np.sin(azimuth) * np.cross(up, side)
        direction = np.cos(elevation) * around + np.sin(elevation) * up
        camera = Camera.look_at(centre + 2.6 * radius * direction, centre, up, 36.0, args.size, args.size)
        out = renderer.render(mesh.vertices, mesh.faces, camera, shade=headlight, normals=mesh.vertex_normals())
        tiles.append((out.image.clamp(0, 1).numpy() * 255).round().astype(np.uint8))
    renderer.release()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(args.out, np.concatenate(tiles, axis=1))


if __name__ == "__main__":
    main()
