"""The false-colour "see" mode: h's three principal components over the surface (NDS Fig. 8)."""

from __future__ import annotations

import torch

from render.viewer.features import FeatureProjection

LOW_PERCENTILE = 1.0
HIGH_PERCENTILE = 99.0


def fit_projection(
    features: torch.Tensor, low_percentile: float = LOW_PERCENTILE, high_percentile: float = HIGH_PERCENTILE
) -> FeatureProjection:
    """PCA of surface features (N, F) → the projection every viewer path applies.

    Fitted once per shader on area-uniform samples, so colours mean the same thing from every
    view. Each component's range is its 1st–99th percentile: a few outliers (seams, fin edges)
    do not wash the rest out. The sign of each axis is fixed (largest loading positive), so
    refitting the same shader gives the same colours.

    Args:
        features: (N, F) h at surface samples, N ≥ 2.

    Returns:
        FeatureProjection with float32 CPU tensors; fewer than 3 features pad with zero rows.
    """
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need features (N ≥ 2, F), got {tuple(features.shape)}")
    h = features.detach().to("cpu", torch.float64)
    mean = h.mean(dim=0)
    centred = h - mean
    covariance = centred.T @ centred / (h.shape[0] - 1)
    _values, vectors = torch.linalg.eigh(covariance)  # ascending eigenvalues
    basis = vectors.flip(-1)[:, :3].T  # (≤3, F), largest variance first
    pivot = basis.abs().argmax(dim=1)
    basis = basis * basis.gather(1, pivot[:, None]).sign()
    if basis.shape[0] < 3:
        basis = torch.cat((basis, basis.new_zeros(3 - basis.shape[0], basis.shape[1])))
    components = centred @ basis.T
    q = torch.tensor([low_percentile / 100.0, high_percentile / 100.0], dtype=torch.float64)
    low, high = torch.quantile(components, q, dim=0)
    return FeatureProjection(mean.float(), basis.float(), low.float(), high.float())
