"""Differentiable rendering as rasterize-then-splat factors it; knows nothing of datasets or Qt."""

from render.camera import Camera, clip_to_pixels, to_clip
from render.fragments import Fragments
from render.interpolate import interpolate
from render.rasterize import make_rasterizer, rasterize

__all__ = [
    "Camera",
    "Fragments",
    "clip_to_pixels",
    "interpolate",
    "make_rasterizer",
    "rasterize",
    "to_clip",
]
