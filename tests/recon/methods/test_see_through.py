"""The background a mask shows through the object, and when a render closes it."""

from __future__ import annotations

import torch

from recon.methods.see_through import closed_see_throughs, see_through_labels


SIZE, OUTER, INNER = 32, 12.0, 4.0


def _radius() -> torch.Tensor:
    """Each pixel centre's distance from the image centre."""
    y, x = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    return torch.hypot(x - SIZE / 2, y - SIZE / 2)


def _annulus() -> torch.Tensor:
    """A ring seen from above: object between the radii, background inside and outside."""
    return ((_radius() < OUTER) & (_radius() >= INNER)).float()


def test_only_background_the_object_encloses_is_a_see_through() -> None:
    mask = _annulus()
    labels = see_through_labels(mask)
    assert int(labels.max()) == 1
    hole = labels == 1
    assert torch.equal(hole, _radius() < INNER)
    assert not bool(hole[0].any() or hole[:, 0].any())  # the border's background is not
    assert int(see_through_labels(torch.ones(8, 8)).max()) == 0
    two = torch.ones(9, 9)
    two[2, 2] = two[6, 6] = 0.0
    assert int(see_through_labels(two).max()) == 2


def test_a_render_that_fills_a_see_through_closes_it() -> None:
    mask = _annulus()
    labels = see_through_labels(mask)
    open_pixels = int((labels == 1).sum())
    filled = _radius() < OUTER
    assert closed_see_throughs(labels, mask, filled.float()).tolist() == [open_pixels]
    # Rounding the rim covers its outer pixels (20 of 52): not closed; covering 40 of them is.
    rim = mask.clone()
    rim[(_radius() >= INNER - 1) & (_radius() < INNER)] = 1.0
    assert closed_see_throughs(labels, mask, rim).numel() == 0
    rim[(_radius() >= INNER - 2) & (_radius() < INNER)] = 1.0
    assert closed_see_throughs(labels, mask, rim).tolist() == [open_pixels]
    # What the current surface already covers cannot be closed by the proposal.
    assert closed_see_throughs(labels, filled.float(), filled.float()).numel() == 0
    # Nor is a see-through of one open pixel counted: too few to tell from a rim's flicker.
    one_open = filled.float()
    one_open[16, 16] = 0.0
    assert closed_see_throughs(labels, one_open, filled.float()).numel() == 0
