"""`ShadingInputs`: everything the neural display modes need besides the MLP, as one immutable value.

The projection of the "features" mode, the feature edits, the material centroids (cells), the
highlighted material and each cell's material id travel together from the GUI's materials model
through the viewport to every shading path (CPU, GLSL, CUDA interop); one value instead of five
loose arguments means a path cannot be handed half of them, and a worker thread can keep a
frame's inputs while the UI moves on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from render.viewer.features import FeatureEdits, FeatureProjection


@dataclass(frozen=True, eq=False)  # tensors inside: compared by identity
class ShadingInputs:
    """What "neural", "features" and "materials" shading read besides the MLP.

    Attributes:
        projection: PCA false colour of the "features" mode.
        edits: feature edits applied between h and c ("neural" and "features" modes).
        centroids: (K, F) centroids of the "materials" mode; a sample's material is its nearest.
        highlight: material id drawn bright in the "materials" mode (None: no highlight).
        cell_material: (K,) int material id of each centroid when the centroids are cells of
            materials (recon.materials clusters a material into several); None: one per material.
    """

    projection: FeatureProjection | None = None
    edits: FeatureEdits | None = None
    centroids: torch.Tensor | None = None
    highlight: int | None = None
    cell_material: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.centroids is None and self.cell_material is not None:  # cells without centroids mean nothing
            object.__setattr__(self, "cell_material", None)

    def missing(self, mode: str) -> str | None:
        """What `mode` lacks here ("no feature projection", "no material centroids"), or None."""
        if mode == "features" and self.projection is None:
            return "no feature projection"
        if mode == "materials" and self.centroids is None:
            return "no material centroids"
        return None


NO_INPUTS = ShadingInputs()
