"""The background a mask shows through the object, and whether a surface's render closes it.

A proposal that changes a surface's topology (NDS's web cutting) must not fill a hole the
images show: a hole only one or two views see through costs the silhouettes over all views
little (a ball with a 0.1-wide hole, one of 24 views looking along it, was filled for +3.5 %),
but in the view that sees through it the whole see-through turns from background to object.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

# A see-through counts as closed when the proposal leaves open less than this share of the pixels
# the current surface leaves open there: the rounding of a hole's rim covers a few of its pixels,
# filling it covers all of them.
CLOSED_SHARE = 0.5


def see_through_labels(mask: torch.Tensor) -> torch.Tensor:
    """(H, W) int64 on the mask's device: 1…n for each region of background the object encloses
    (background pixels with no 4-connected path to the image border), 0 elsewhere."""
    inside = mask.detach().cpu().numpy() >= 0.5
    enclosed = ndimage.binary_fill_holes(inside) & ~inside
    labels, _ = ndimage.label(enclosed)
    return torch.from_numpy(labels.astype(np.int64)).to(mask.device)


def closed_see_throughs(labels: torch.Tensor, alpha_before: torch.Tensor, alpha_after: torch.Tensor) -> torch.Tensor:
    """Open pixels (before) of each see-through in `labels` that the second render closes.

    A see-through is closed when the first render leaves at least two of its pixels open
    (alpha < 0.5) and the second fewer than `CLOSED_SHARE` of that many. Returns the first
    render's open pixel counts of the closed ones (empty when none is).
    """
    count = int(labels.max())
    if count == 0:
        return labels.new_zeros(0)
    open_before = torch.bincount(labels[alpha_before < 0.5], minlength=count + 1)[1:]
    open_after = torch.bincount(labels[alpha_after < 0.5], minlength=count + 1)[1:]
    closed = (open_before >= 2) & (open_after < CLOSED_SHARE * open_before)
    return open_before[closed]
