"""What sampling returns: per pixel and layer, which triangle and where on it. Never differentiable."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Fragments:
    """K depth-sorted layers of surface samples for one view (front-most layer first).

    Attributes:
        tri_id: (K, H, W) int64 triangle index into the faces given to `rasterize`; -1 where empty.
        bary: (K, H, W, 3) float32 perspective-correct barycentrics of the pixel centre w.r.t. the
            triangle's vertices (faces[tri_id, 0], [1], [2]); 0 where empty.
        depth: (K, H, W) float32 camera-space z of the sample (positive forward); +inf where empty.

    Row 0 is the top image row and column 0 the left column (render.camera conventions); pixel
    (i, j) is sampled at its centre (j + 0.5, i + 0.5).
    """

    tri_id: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor

    @property
    def layers(self) -> int:
        return self.tri_id.shape[0]

    @property
    def resolution(self) -> tuple[int, int]:
        """(H, W)."""
        return self.tri_id.shape[1], self.tri_id.shape[2]

    @property
    def covered(self) -> torch.Tensor:
        """(K, H, W) bool: where a layer holds a sample."""
        return self.tri_id >= 0

    def to(self, device: torch.device | str) -> Fragments:
        return Fragments(self.tri_id.to(device), self.bary.to(device), self.depth.to(device))
