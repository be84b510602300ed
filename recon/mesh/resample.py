"""A closed surface sampled again from its own signed distance: what is thinner than the grid goes.

    v, f = resample_by_distance(vertices, faces, spacing)

NDS keeps the genus of its start, and a visual hull often has handles the object has not: where
few views see through a hole, each carves its own tunnel and the pillars between them stay
(the ring benchmark's hull has genus 4 for the ring's 1). The optimisation thins such pillars into
webs but cannot cut them. Marching Cubes of the surface's signed distance on a grid of `spacing`
drops every part no grid point lies inside of, webs among them, and (the other way round) joins
sheets closer than about `spacing`: so the result is a proposal, which a caller adopts only when
it lowers the genus and the images agree (`recon.methods.nds`). To judge that, `nearest_points`
puts its vertices back onto the input: where nothing vanished that is the input surface to within
its triangles, so the images see what was cut and not Marching Cubes' rounding (which on a grid of
two edges costs the silhouettes as much as a web does). The rounded surface is the one to go on
from: put back, the vertices round a web's root stand on the root as spikes.
"""

from __future__ import annotations

import gpytoolbox
import numpy as np

from recon.mesh.clean import drop_small_components
from render.isosurface import Lattice, extract_isosurface

#: Components of the resampled surface below this share of its area are specks a web leaves.
SPECK_SHARE = 0.01


def resample_by_distance(vertices: np.ndarray, faces: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """The zero level set of the signed distance to a closed mesh, sampled every `spacing`, less its specks.

    Args:
        vertices: #V,3 float, a closed, consistently oriented (outward) surface.
        faces: #F,3 int.
        spacing: grid step, in the vertices' units; parts thinner than about this vanish.

    Returns:
        (vertices #V',3 float64, faces #F',3 int64): closed, counter-clockwise seen from outside,
        components under `SPECK_SHARE` of the area dropped. Marching Cubes triangles: remesh
        before optimising on them.
    """
    if not spacing > 0:
        raise ValueError(f"spacing must be positive, got {spacing}")
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    lo = v.min(axis=0) - 2 * spacing  # two cells of outside round the surface: it closes inside the grid
    shape = tuple(int(n) for n in np.ceil((v.max(axis=0) + 2 * spacing - lo) / spacing).astype(int) + 1)
    lattice = Lattice(shape, tuple(lo), tuple(lo + spacing * (np.asarray(shape) - 1)))
    axes = [lo[k] + spacing * np.arange(shape[k]) for k in range(3)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)  # #N,3 in the lattice's order
    distance = gpytoolbox.signed_distance(points, v, f.astype(np.int32))[0]  # #N, negative inside (winding number)
    surface = extract_isosurface(distance.reshape(shape), lattice, level=0.0, min_gap=0.0)  # vertices shared
    return drop_small_components(np.asarray(surface.vertices, dtype=np.float64), np.asarray(surface.faces, dtype=np.int64), SPECK_SHARE)


def nearest_points(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The nearest point of the mesh (vertices #V,3, faces #F,3) to each of `points` #P,3: #P,3 float64."""
    v, f = np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64)
    _, face, barycentric = gpytoolbox.squared_distance(np.asarray(points, dtype=np.float64), v, f.astype(np.int32), use_cpp=True)
    return np.einsum("nk,nkd->nd", barycentric, v[f[face]])
