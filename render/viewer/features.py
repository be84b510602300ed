"""Views and edits of the shader's feature vectors h(x), applied between h and c at shading time.

The neural shader is f(x, n, ω) = c(h(x), n, ω). Its features h group by material (NDS §4.3), so
a material is a centroid in feature space and a sample belongs to its nearest centroid. Every
shading path of the viewer (torch on CPU or CUDA, the generated GLSL compute shader) applies the
same two pure functions defined here, and `recon` uses them for baking, so an edit looks the same
wherever it is shown or exported:

- `FeatureProjection`: h ↦ false colour through 3 principal components (the "see" mode).
- `FeatureEdits`: each edit replaces the features of one material, optionally only inside a ball
  around a point of the surface, by a blend towards a target feature vector. Membership is decided
  on the *unedited* features, so edits never cascade: "A → B" followed by "B → C" leaves the region
  that was A at B's features. Edits apply in list order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FeatureProjection:
    """h ↦ clamp((basis · (h − mean) − low) / (high − low), 0, 1) as RGB.

    Attributes:
        mean: (F,) feature mean over the surface.
        basis: (3, F) the first three principal directions (rows).
        low, high: (3,) the range of each component mapped to [0, 1] (e.g. 1st/99th percentiles).
    """

    mean: torch.Tensor
    basis: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        """(..., F) → (..., 3) false colour in [0, 1]."""
        components = (h - self.mean.to(h)) @ self.basis.to(h).T
        span = (self.high - self.low).to(h).clamp_min(1e-12)
        return ((components - self.low.to(h)) / span).clamp(0.0, 1.0)


@dataclass(frozen=True)
class FeatureEdits:
    """Material replacements in feature space (E edits over K materials of F features).

    Attributes:
        centroids: (K, F) material centroids; a sample's material is its nearest centroid.
        source: (E,) int64 material index each edit applies to.
        target: (E, F) the feature vector blended in.
        weight: (E,) blend weight in [0, 1]: h ← (1 − w)·h + w·target.
        centre: (E, 3) centre of the edit's region in normalised coordinates.
        radius: (E,) radius of that region; +inf means the whole material.
    """

    centroids: torch.Tensor
    source: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor
    centre: torch.Tensor
    radius: torch.Tensor

    @property
    def count(self) -> int:
        return int(self.source.shape[0])


def nearest_material(h: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """(..., F) features → (...,) int64 index of the nearest centroid (squared Euclidean)."""
    c = centroids.to(h)
    distance = (h * h).sum(-1, keepdim=True) - 2.0 * h @ c.T + (c * c).sum(-1)
    return distance.argmin(-1)


def apply_feature_edits(h: torch.Tensor, x: torch.Tensor, edits: FeatureEdits | None) -> torch.Tensor:
    """Edited features for samples with features h (..., F) at normalised positions x (..., 3)."""
    if edits is None or edits.count == 0:
        return h
    material = nearest_material(h, edits.centroids)
    out = h
    for e in range(edits.count):
        inside = (material == edits.source[e]) & (
            (x - edits.centre[e].to(x)).norm(dim=-1) <= edits.radius[e].to(x)
        )
        w = edits.weight[e].to(h)
        blended = (1.0 - w) * out + w * edits.target[e].to(h)
        out = torch.where(inside[..., None], blended, out)
    return out
