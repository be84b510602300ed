"""Real-time viewer pipeline: G-buffer pass, shading paths (CUDA–GL interop, GLSL compute, CPU read-back).

No Qt and no recon here: the app's QOpenGLWidget owns the GL context and drives `ViewerPipeline`;
recon turns its `NeuralShader` or DVR's `DVRTextureShader` into `MLPWeights`.
"""

from render.viewer.cpu import AdaptiveResolution, GBufferFrame, shade_cpu
from render.viewer.features import FeatureEdits, FeatureProjection, apply_feature_edits, nearest_material
from render.viewer.inputs import NO_INPUTS, ShadingInputs
from render.viewer.mlp import (
    MLPWeights,
    ResidualBlock,
    material_colors,
    material_palette,
    mlp_color,
    mlp_features,
    positional_encoding,
    shade_reference,
)
from render.viewer.pipeline import MODES, PATHS, FrameStats, ViewerPipeline

__all__ = [
    "MODES",
    "NO_INPUTS",
    "PATHS",
    "AdaptiveResolution",
    "FeatureEdits",
    "FeatureProjection",
    "FrameStats",
    "GBufferFrame",
    "MLPWeights",
    "ResidualBlock",
    "ShadingInputs",
    "ViewerPipeline",
    "apply_feature_edits",
    "material_colors",
    "material_palette",
    "mlp_color",
    "mlp_features",
    "nearest_material",
    "positional_encoding",
    "shade_cpu",
    "shade_reference",
]
