"""Datasets: one Scene type, loaders for every format users bring, and the NDS folder writer."""

from recon.data.images import CPU_MAX_SIDE, AutoScale
from recon.data.load import FORMATS, detect, load
from recon.data.scene import Loaded, Scene, View

__all__ = ["CPU_MAX_SIDE", "FORMATS", "AutoScale", "Loaded", "Scene", "View", "detect", "load"]
