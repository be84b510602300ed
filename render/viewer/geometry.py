"""Pure numpy geometry the viewer pipeline draws from: normals, edges, frusta, clip matrices.

No GL here, so each piece is testable on its own and the pipeline keeps only GL state.
"""

from __future__ import annotations

import numpy as np

from render.camera import Camera


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) float32 area-weighted unit vertex normals (zero-area neighbourhoods give +z)."""
    v = vertices.astype(np.float64)
    face_n = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    corners = faces.reshape(-1)
    weights = np.repeat(face_n, 3, axis=0)
    n = np.stack([np.bincount(corners, weights=weights[:, k], minlength=len(v)) for k in range(3)], axis=1)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.where(length > 1e-30, n / np.maximum(length, 1e-30), np.array([0.0, 0.0, 1.0]))
    return n.astype(np.float32)


def unique_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) int32 undirected edges of a triangle list, each once."""
    pairs = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).astype(np.int64)
    pairs.sort(axis=1)
    n = int(pairs.max()) + 1 if len(pairs) else 1
    keys = np.unique(pairs[:, 0] * n + pairs[:, 1])
    return np.stack([keys // n, keys % n], axis=1).astype(np.int32)


def box_corners(vertices: np.ndarray) -> np.ndarray:
    """(8, 3) float64 corners of the axis-aligned box of (V, 3) vertices (V ≥ 1)."""
    lo, hi = vertices.min(0).astype(np.float64), vertices.max(0).astype(np.float64)
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def frustum_lines(cameras: list[Camera], depth: float) -> np.ndarray:
    """(C · 16, 3) float32 line-list vertices: apex → 4 image corners, and the corner ring, at `depth`."""
    if not cameras:
        return np.zeros((0, 3), np.float32)
    K = np.stack([c.K for c in cameras])
    R = np.stack([c.R for c in cameras])
    t = np.stack([c.t for c in cameras])
    size = np.array([[c.width, c.height] for c in cameras], dtype=np.float64)
    unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
    pix = np.concatenate([unit[None] * size[:, None], np.ones((len(cameras), 4, 1))], axis=2)  # (C, 4, 3)
    rays = np.linalg.solve(K[:, None], pix[..., None])[..., 0]  # (C, 4, 3) camera-space, z = 1
    corners = np.einsum("cji,ckj->cki", R, rays * depth - t[:, None])  # Rᵀ(x_c − t)
    apex = -np.einsum("cji,cj->ci", R, t)
    ring = np.stack([corners, np.roll(corners, -1, axis=1)], axis=2)  # (C, 4, 2, 3)
    spokes = np.stack([np.broadcast_to(apex[:, None], corners.shape), corners], axis=2)
    return np.concatenate([spokes, ring], axis=1).reshape(-1, 3).astype(np.float32)


def enclosing_clip(camera: Camera, corners: np.ndarray, frusta_points: np.ndarray) -> np.ndarray:
    """World → clip with near/far enclosing the mesh's box `corners` and the frusta in front of the camera.

    Frustum points closer than 1 % of far don't pull near in (the current camera's own apex
    sits at depth 0); they are clipped instead, which keeps depth precision for the mesh.
    """
    z = corners @ camera.R[2] + camera.t[2]
    if len(frusta_points):
        zf = frusta_points @ camera.R[2] + camera.t[2]
        z = np.concatenate([z, zf[zf > 0.01 * max(float(z.max()), float(zf.max()))]])
    far = float(z.max()) * 1.05 + 1e-6
    if far <= 1e-6:
        far = 1.0
    near = max(float(z.min()) * 0.95, far * 1e-4)
    return camera.clip_matrix(near, max(far, near * 1.01))


def matrix_bytes(m: np.ndarray) -> bytes:
    """A row-major numpy (4, 4) as GLSL's column-major mat4."""
    return np.ascontiguousarray(m.T, dtype=np.float32).tobytes()
