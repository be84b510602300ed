"""Discover a run's materials: cluster h over the surface, describe each cluster (NDS §4.3).

Material ids are ordered by surface share, largest first, so they read the same in every listing.

A material is a set of cells, k-means centroids of the raw h (`recon.materials.clustering` says
how and why); a surface point belongs to its nearest centroid (`nearest_material`) here, in the
viewer and when baking, and `cell_material` maps the cell to the material.

Each material also gets a *representative* feature, the edit target "replace A by B" blends in:
the sample of B whose feature is nearest to B's mean feature, not the mean itself. c(h, n, ω) was
only ever trained on features h actually produces; a mean averages lit and unlit variants of a
material (the paper notes illumination leaks into h) and can fall off that set, where c's
response is untested. A real sample is on it, and typical of B by construction.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import torch

from recon.export import srgb_to_linear
from recon.materials.clustering import cluster_materials
from recon.materials.projection import fit_projection
from recon.materials.sampling import SurfaceSamples, sample_surface, surface_colors, surface_features
from recon.shader import NeuralShader
from render.viewer.features import FeatureProjection, nearest_material

log = logging.getLogger(__name__)

DEFAULT_SAMPLES = 20_000


def linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    """Inverse of the sRGB transfer function, elementwise on [0, 1]."""
    c = c.clamp(0.0, 1.0)
    return torch.where(c <= 0.0031308, 12.92 * c, 1.055 * c.clamp_min(1e-12) ** (1 / 2.4) - 0.055)


def srgb_hex(rgb: torch.Tensor | tuple[float, float, float]) -> str:
    """'#rrggbb' of an sRGB colour in [0, 1]."""
    values = torch.as_tensor(rgb, dtype=torch.float64).clamp(0, 1)
    return "#" + "".join(f"{int(round(float(v) * 255)):02x}" for v in values)


def shader_digest(shader: NeuralShader) -> str:
    """SHA-256 of the shader's weights (float32, keys sorted): ties a clustering to one shader."""
    digest = hashlib.sha256()
    for key, value in sorted(shader.state_dict().items()):
        digest.update(key.encode("utf-8"))
        digest.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class MaterialInfo:
    """One row of the materials list: id, share of the surface area, mean colour (sRGB, ω = n)."""

    id: int
    area_share: float
    mean_color: tuple[float, float, float]

    @property
    def hex(self) -> str:
        return srgb_hex(self.mean_color)

    def to_dict(self) -> dict:
        return {"id": self.id, "area_share": self.area_share, "mean_color": list(self.mean_color), "hex": self.hex}


@dataclass(frozen=True)
class Materials:
    """A clustering of one shader's features into K materials made of C ≥ K cells (CPU tensors).

    A sample's material is `cell_material[nearest cell centroid]`. The cells are what shading
    uses (`FeatureEdits.centroids`); the map turns a cell into the material users see.

    Attributes:
        centroids: (C, F) float32 cell centres.
        cell_material: (C,) int64 material id of each cell.
        representatives: (K, F) each material's edit target (the sample nearest its mean feature).
        area_share: (K,) share of the surface area, summing to 1, descending.
        mean_color: (K, 3) sRGB mean colour of the material's surface seen head-on (ω = n),
            averaged in linear light.
        projection: the PCA false-colour projection fitted on the same samples.
        seed, samples: how the surface was sampled and k-means seeded.
        auto_k: whether k was chosen automatically; silhouette: the score of each candidate k.
        shader_digest: `shader_digest` of the shader the features came from.
    """

    centroids: torch.Tensor
    cell_material: torch.Tensor
    representatives: torch.Tensor
    area_share: torch.Tensor
    mean_color: torch.Tensor
    projection: FeatureProjection
    seed: int
    samples: int
    auto_k: bool
    shader_digest: str
    silhouette: dict[int, float] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.representatives.shape[0])

    @property
    def fingerprint(self) -> str:
        """Short hash of cells, their map and the edit targets: edits name the clustering they were made on."""
        digest = hashlib.sha256()
        for t in (self.centroids.float(), self.cell_material.long(), self.representatives.float()):
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def info(self) -> list[MaterialInfo]:
        """The materials list, id order (= largest first)."""
        return [
            MaterialInfo(i, float(self.area_share[i]), tuple(float(c) for c in self.mean_color[i]))  # type: ignore[arg-type]
            for i in range(self.k)
        ]

    def labels(self, features: torch.Tensor) -> torch.Tensor:
        """Material id (...,) of features (..., F): the rule every shading path uses, plus the cell map."""
        return self.cell_material.to(features.device)[nearest_material(features, self.centroids)]

    def cells_of(self, material: int) -> torch.Tensor:
        """Indices of the cells that make up one material."""
        return (self.cell_material == material).nonzero().squeeze(1)


def cluster_samples(
    shader: NeuralShader, samples: SurfaceSamples, k: int | None = None, seed: int = 0
) -> tuple[Materials, torch.Tensor]:
    """Materials from given surface samples, and each sample's material id (N,).

    Args:
        shader: the trained shader.
        samples: area-uniform points in normalised coordinates with their normals.
        k: number of materials; None chooses it (`recon.materials.clustering`).
        seed: seeds k-means.
    """
    h = surface_features(shader, samples.points)
    clustering = cluster_materials(h, samples.normals, k=k, seed=seed)
    # Materials that won no cell vanish; ids are then ordered by surface share, largest first.
    present, group = torch.unique(clustering.labels, return_inverse=True)
    k_found = int(present.numel())
    share = torch.bincount(group, minlength=k_found).double() / len(samples)
    order = share.argsort(descending=True, stable=True)
    rank = torch.argsort(order)  # old id → new id
    labels = rank[group]
    cell_material = rank[torch.searchsorted(present, clustering.cell_material)]

    colors = surface_colors(shader, h, samples.normals).double()
    linear = torch.from_numpy(srgb_to_linear(colors.numpy()))
    counts = torch.bincount(labels, minlength=k_found).double().clamp_min(1)[:, None]
    mean_linear = torch.zeros(k_found, 3, dtype=torch.float64).index_add_(0, labels, linear) / counts
    mean_h = torch.zeros(k_found, h.shape[1], dtype=torch.float64).index_add_(0, labels, h.double()) / counts

    representatives = torch.empty(k_found, h.shape[1], dtype=torch.float32)
    for material in range(k_found):
        members = (labels == material).nonzero().squeeze(1)
        distance = ((h[members].double() - mean_h[material]) ** 2).sum(-1)
        representatives[material] = h[members[distance.argmin()]]

    materials = Materials(
        centroids=clustering.centroids.contiguous(),
        cell_material=cell_material.contiguous(),
        representatives=representatives,
        area_share=share[order].float(),
        mean_color=linear_to_srgb(mean_linear).float(),
        projection=fit_projection(h),
        seed=int(seed),
        samples=len(samples),
        auto_k=k is None,
        shader_digest=shader_digest(shader),
        silhouette=clustering.silhouette,
    )
    log.info("discovered %d materials (%s)", k_found, ", ".join(f"{m.id}: {100 * m.area_share:.1f} % {m.hex}" for m in materials.info()))
    return materials, labels


def discover_materials(
    shader: NeuralShader,
    vertices: torch.Tensor,
    faces: torch.Tensor,
    k: int | None = None,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> Materials:
    """Cluster h over `samples` area-uniform points of a mesh given in *normalised* coordinates.

    Deterministic: the same shader, mesh, k, samples and seed give the same materials, bit for bit.
    """
    points = sample_surface(vertices, faces, samples, seed=seed)
    return cluster_samples(shader, points, k=k, seed=seed)[0]
