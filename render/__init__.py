"""Differentiable rendering as rasterize-then-splat factors it; knows nothing of datasets or Qt."""
