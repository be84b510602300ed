"""TODO: bounding box estimation from masks and cameras."""

from __future__ import annotations

import numpy as np


def estimate_bbox(views) -> np.ndarray:
    raise NotImplementedError
