"""The one mesh type: vertices + immutable faces, with connectivity computed once and shared."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch
import trimesh

from recon.mesh import ops


class Topology:
    """Connectivity-only quantities of one face array, computed on first use and kept.

    Faces never change for the lifetime of a `Mesh`, so these survive every optimisation step
    (NDS §3.3 precomputes them once after each upsampling); meshes made by `with_vertices`
    share the same instance.
    """

    def __init__(self, faces: torch.Tensor, num_vertices: int) -> None:
        self.faces = faces  # #F,3 long
        self.num_vertices = num_vertices

    @cached_property
    def _edges(self) -> tuple[torch.Tensor, torch.Tensor]:
        return ops.edges(self.faces)

    @property
    def edges(self) -> torch.Tensor:
        """#E,2 long unique undirected edges (a < b)."""
        return self._edges[0]

    @property
    def face_edges(self) -> torch.Tensor:
        """#F,3 long index into `edges` of face edge k (corner k → k+1)."""
        return self._edges[1]

    @cached_property
    def edge_face_counts(self) -> torch.Tensor:
        """#E faces per edge (2 on an edge-manifold closed mesh)."""
        return ops.edge_face_counts(self.face_edges, len(self.edges))

    @cached_property
    def face_adjacency(self) -> torch.Tensor:
        """#P,2 long pairs of faces sharing an edge."""
        return ops.face_adjacency(self.face_edges)

    @cached_property
    def laplacian(self) -> torch.Tensor:
        """Sparse #V,#V float32 L = I − D⁻¹A (see ops.uniform_laplacian)."""
        return ops.uniform_laplacian(self.num_vertices, self.edges)


class Mesh:
    """Triangle mesh: float32 vertices #V,3 and int64 faces #F,3, CCW outward, on one device.

    `vertices` may be a leaf being optimised; `faces` must not be modified in place (the
    connectivity cache assumes they are fixed). Vertex normals are not cached because the
    vertices change every step: call `vertex_normals()`.
    """

    def __init__(self, vertices: torch.Tensor, faces: torch.Tensor, *, _topology: Topology | None = None) -> None:
        vertices = torch.as_tensor(vertices)
        faces = torch.as_tensor(faces, device=vertices.device)
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"vertices must have shape (V, 3), got {tuple(vertices.shape)}")
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces must have shape (F, 3), got {tuple(faces.shape)}")
        if faces.is_floating_point():
            raise ValueError(f"faces must be integers, got {faces.dtype}")
        if _topology is None and faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= len(vertices)):
            raise ValueError(f"faces index outside 0..{len(vertices) - 1}")  # checked once, not every step
        self.vertices = vertices if vertices.dtype == torch.float32 else vertices.to(torch.float32)
        self.faces = faces.to(torch.int64)
        self._topology = _topology if _topology is not None else Topology(self.faces, len(vertices))

    def __repr__(self) -> str:
        return f"Mesh(V={self.num_vertices}, F={self.num_faces}, device={self.device})"

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def device(self) -> torch.device:
        return self.vertices.device

    # Connectivity (cached for the lifetime of the faces).
    @property
    def topology(self) -> Topology:
        return self._topology

    @property
    def edges(self) -> torch.Tensor:
        """#E,2 long unique undirected edges."""
        return self._topology.edges

    @property
    def face_edges(self) -> torch.Tensor:
        """#F,3 long face → edge map."""
        return self._topology.face_edges

    @property
    def face_adjacency(self) -> torch.Tensor:
        """#P,2 long pairs of faces sharing an edge."""
        return self._topology.face_adjacency

    @property
    def laplacian(self) -> torch.Tensor:
        """Sparse #V,#V uniform Laplacian I − D⁻¹A."""
        return self._topology.laplacian

    # Geometry (recomputed from the current vertices on every call).
    def vertex_normals(self, vertices: torch.Tensor | None = None) -> torch.Tensor:
        """#V,3 area-weighted unit normals of `vertices` (default: this mesh's), differentiable."""
        return ops.vertex_normals(self.vertices if vertices is None else vertices, self.faces)

    def face_normals(self, vertices: torch.Tensor | None = None) -> torch.Tensor:
        """#F,3 unit face normals of `vertices` (default: this mesh's)."""
        return ops.face_normals(self.vertices if vertices is None else vertices, self.faces)

    def edge_lengths(self) -> torch.Tensor:
        """#E edge lengths."""
        return ops.edge_lengths(self.vertices, self.edges)

    @property
    def bbox(self) -> torch.Tensor:
        """(2, 3) rows min, max of the vertices (detached)."""
        v = self.vertices.detach()
        return torch.stack([v.min(dim=0).values, v.max(dim=0).values])

    # New meshes.
    def with_vertices(self, vertices: torch.Tensor) -> Mesh:
        """Same faces and shared connectivity cache, new vertices #V,3 (e.g. after a step)."""
        if vertices.shape != self.vertices.shape:
            raise ValueError(f"with_vertices needs shape {tuple(self.vertices.shape)}, got {tuple(vertices.shape)}")
        return Mesh(vertices.to(self.device), self.faces, _topology=self._topology)

    def detach(self) -> Mesh:
        """The same mesh with vertices cut from the autograd graph (connectivity shared)."""
        return Mesh(self.vertices.detach(), self.faces, _topology=self._topology)

    def to(self, device: torch.device | str) -> Mesh:
        """This mesh on `device` (itself when already there); the cache is rebuilt lazily there."""
        device = torch.device(device)
        if device == self.device:
            return self
        return Mesh(self.vertices.to(device), self.faces.to(device))

    @staticmethod
    def from_numpy(vertices: np.ndarray, faces: np.ndarray, device: torch.device | str | None = None) -> Mesh:
        """From arrays #V,3 and #F,3 of any float/int dtype."""
        v = torch.as_tensor(np.ascontiguousarray(vertices, dtype=np.float32), device=device)
        f = torch.as_tensor(np.ascontiguousarray(faces, dtype=np.int64), device=device)
        return Mesh(v, f)

    @staticmethod
    def from_trimesh(mesh: trimesh.Trimesh, device: torch.device | str | None = None) -> Mesh:
        """From a trimesh (its winding is kept as is)."""
        return Mesh.from_numpy(mesh.vertices, mesh.faces, device)

    def to_trimesh(self) -> trimesh.Trimesh:
        """A trimesh copy on the CPU (float64 vertices, no processing, so indices are kept)."""
        return trimesh.Trimesh(
            self.vertices.detach().cpu().numpy().astype(np.float64),
            self.faces.cpu().numpy(),
            process=False,
        )
