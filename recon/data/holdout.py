"""Held-out views: which views a run keeps out of the optimisation, so it can be evaluated on them.

A held-out view must not reach the optimisation by any path, so when the dataset has no bounding
box the box is estimated again from the training views' masks alone (a box from every mask
would carry the held-out silhouettes into the normalisation and the visual hull).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable

from recon.data.bbox import estimate_bbox
from recon.data.scene import Scene, View
from recon.errors import DatasetError

log = logging.getLogger(__name__)


def every_nth(scene: Scene, every: int) -> list[str]:
    """Names of views 0, N, 2N, … in the dataset's order (the usual "every Nth image" split)."""
    if every < 2:
        raise DatasetError(scene.source, f"--holdout must be at least 2 (every Nth view held out), got {every}")
    return [v.name for i, v in enumerate(scene.views) if i % every == 0]


def split(scene: Scene, names: Iterable[str]) -> tuple[Scene, tuple[View, ...]]:
    """(the scene without the named views, the named views in dataset order).

    Refuses names the dataset lacks and a split that leaves no view to train on.
    """
    wanted = set(names)
    missing = wanted - {v.name for v in scene.views}
    if missing:
        raise DatasetError(scene.source, f"held-out view(s) not in the dataset: {', '.join(sorted(missing))}")
    kept = tuple(v for v in scene.views if v.name not in wanted)
    held = tuple(v for v in scene.views if v.name in wanted)
    if not kept:
        raise DatasetError(scene.source, "holding these views out leaves no view to reconstruct from")
    train = dataclasses.replace(scene, views=kept)
    if held and scene.bbox_source == "estimated":
        train = dataclasses.replace(train, bbox=estimate_bbox(kept, scene.source))
        log.info("bounding box estimated again from the %d training views: %s", len(kept), train.bbox.tolist())
    return train, held
