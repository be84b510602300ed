"""Meshes: the one Mesh type, vectorised ops, NDS regularisers, initial meshes, remeshing, checks."""

from recon.mesh.checks import check_mesh, self_intersecting_pairs
from recon.mesh.errors import EmptyHullError, MeshError
from recon.mesh.losses import laplacian_loss, normal_consistency_loss
from recon.mesh.mesh import Mesh, Topology
from recon.mesh.ops import (
    edge_face_counts,
    edge_lengths,
    edges,
    face_adjacency,
    face_areas,
    face_normals,
    signed_volume,
    uniform_laplacian,
    vertex_normals,
)
from recon.mesh.remesh import remesh
from recon.mesh.visual_hull import load_mesh, read_trimesh, sphere, visual_hull

__all__ = [
    "EmptyHullError",
    "Mesh",
    "MeshError",
    "Topology",
    "check_mesh",
    "edge_face_counts",
    "edge_lengths",
    "edges",
    "face_adjacency",
    "face_areas",
    "face_normals",
    "laplacian_loss",
    "load_mesh",
    "normal_consistency_loss",
    "read_trimesh",
    "remesh",
    "self_intersecting_pairs",
    "signed_volume",
    "sphere",
    "uniform_laplacian",
    "vertex_normals",
    "visual_hull",
]
