"""Held-out views: the every-Nth split, and that nothing of a held-out view reaches training."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from recon.data import holdout
from recon.data.bbox import estimate_bbox
from recon.data.scene import Scene, View
from recon.errors import DatasetError


def scene_of(views: list[View], bbox_source: str = "estimated") -> Scene:
    bbox = estimate_bbox(views) if bbox_source == "estimated" else np.array([[-1.0, -1, -1], [1, 1, 1]])
    return Scene(tuple(views), bbox, bbox_source, "nds", Path("somewhere"))


def test_every_nth_counts_from_the_first_view(known_views):
    scene = scene_of(known_views, "given")
    assert holdout.every_nth(scene, 3) == ["view_000", "view_003"]
    assert holdout.every_nth(scene, 2) == ["view_000", "view_002", "view_004"]
    with pytest.raises(DatasetError, match="at least 2"):
        holdout.every_nth(scene, 1)


def test_split_keeps_order_and_a_given_box(known_views):
    scene = scene_of(known_views, "given")
    train, held = holdout.split(scene, ["view_003", "view_000"])
    assert [v.name for v in held] == ["view_000", "view_003"]
    assert [v.name for v in train.views] == ["view_001", "view_002", "view_004", "view_005"]
    assert train.bbox is scene.bbox and train.format == scene.format


def test_an_estimated_box_comes_from_the_training_views_only(known_views):
    # A held-out mask that claims much more object would grow a box estimated from every mask.
    fat = np.ones_like(known_views[0].mask)
    views = [dataclasses.replace(known_views[0], mask=fat), *known_views[1:]]
    scene = scene_of(views[1:])  # the box the training views alone give
    with_held = dataclasses.replace(scene, views=tuple(views), bbox=np.array([[-9.0, -9, -9], [9, 9, 9]]))
    train, held = holdout.split(with_held, ["view_000"])
    assert [v.name for v in held] == ["view_000"]
    np.testing.assert_allclose(train.bbox, scene.bbox)


def test_unknown_names_and_holding_out_everything_are_refused(known_views):
    scene = scene_of(known_views, "given")
    with pytest.raises(DatasetError, match="not in the dataset: nope"):
        holdout.split(scene, ["view_000", "nope"])
    with pytest.raises(DatasetError, match="no view to reconstruct"):
        holdout.split(scene, [v.name for v in known_views])
