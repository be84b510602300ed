"""Material editing in the shader's feature space (NDS §4.3, Fig. 8): see, discover, edit, bake.

- `sampling`: area-uniform surface samples and h(x) at them.
- `projection`: PCA false colour of h (`FeatureProjection`).
- `clustering`: lighting trend removed, k-means++ (automatic k by silhouette), cells of raw h.
- `discover`: `Materials` — centroids, edit targets, area shares, mean colours.
- `store`: the clustering beside the run (materials.safetensors + materials.json).
- `edits`: the immutable edit list, `edits.json`, and its shading form (`FeatureEdits`).
- `swatch`: material balls rendered by the shader itself.
- `run`: a run folder's materials (reuse or re-cluster); `views`: deferred shading with edits.

The shading-time functions themselves live in `render.viewer.features`, shared with the viewer.
"""

from recon.materials.clustering import Clustering, KMeansResult, choose_k, cluster_materials, kmeans, remove_normal_trend
from recon.materials.discover import (
    DEFAULT_SAMPLES,
    MaterialInfo,
    Materials,
    cluster_samples,
    discover_materials,
    shader_digest,
    srgb_hex,
)
from recon.materials.edits import (
    EDITS_FILE,
    EditsFileError,
    MaterialEdits,
    Region,
    ReplaceMaterial,
    edits_from_dict,
    feature_edits,
    load_edits,
    save_edits,
)
from recon.materials.projection import fit_projection
from recon.materials.run import RunAppearance, load_run_appearance, run_materials, stored_materials
from recon.materials.sampling import SurfaceSamples, sample_surface, surface_colors, surface_features
from recon.materials.store import MaterialsFileError, load_materials, save_materials
from recon.materials.swatch import material_swatch, material_swatches

__all__ = [
    "DEFAULT_SAMPLES",
    "EDITS_FILE",
    "EditsFileError",
    "Clustering",
    "KMeansResult",
    "MaterialEdits",
    "MaterialInfo",
    "Materials",
    "MaterialsFileError",
    "Region",
    "ReplaceMaterial",
    "RunAppearance",
    "SurfaceSamples",
    "choose_k",
    "cluster_materials",
    "cluster_samples",
    "discover_materials",
    "edits_from_dict",
    "feature_edits",
    "fit_projection",
    "kmeans",
    "load_edits",
    "load_materials",
    "load_run_appearance",
    "remove_normal_trend",
    "material_swatch",
    "material_swatches",
    "run_materials",
    "sample_surface",
    "save_edits",
    "save_materials",
    "shader_digest",
    "srgb_hex",
    "stored_materials",
    "surface_colors",
    "surface_features",
]
