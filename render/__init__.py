"""Differentiable rendering as rasterize-then-splat factors it; knows nothing of datasets or Qt."""

from render.camera import Camera, clip_to_pixels, to_clip
from render.fragments import Fragments
from render.interpolate import interpolate
from render.isosurface import IsoMesh, IsoSamples, Lattice, evaluate_isosurface, extract_isosurface, sample_isosurface
from render.rasterize import make_rasterizer, rasterize
from render.renderer import GBuffer, Renderer, RenderResult
from render.splat import splat, splat_samples

__all__ = [
    "Camera",
    "Fragments",
    "GBuffer",
    "IsoMesh",
    "IsoSamples",
    "Lattice",
    "RenderResult",
    "Renderer",
    "clip_to_pixels",
    "evaluate_isosurface",
    "extract_isosurface",
    "interpolate",
    "make_rasterizer",
    "rasterize",
    "sample_isosurface",
    "splat",
    "splat_samples",
    "to_clip",
]
