"""NDS settings: one object, saved with every run; defaults are the paper's (§4, supplementary C)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from recon.errors import ReconstructError
from recon.precision import PRECISIONS
from recon.shader import ShaderConfig


class ConfigError(ReconstructError):
    """A setting is unknown or out of range."""


@dataclass(frozen=True)
class NDSConfig:
    """Schedules, sizes and weights of one NDS reconstruction.

    Attributes:
        iterations: gradient steps in total (paper: 2000).
        remesh_at: iterations after which the mesh is remeshed to half its mean edge length.
        lr_vertices, lr_shader: Adam step sizes (paper: 1e-3 each for reconstruction). The vertex
            step defaults to 3e-3: with `splat_shading` concavities are carved by many small
            shading-driven moves, and at 1e-3 the demo's bowl is still half full after 2000
            iterations (Chamfer 0.37 % against 0.30 % at 3e-3; 2e-3 and 3e-3 measure alike).
        weight_*: λ of the silhouette (2), shading (1), Laplacian (40) and normal (0.1) terms.
        shading_fraction: share of the pixels inside both masks in the shading term per step (0.75).
        shading_tile: 0 = those pixels are scattered at random (the paper), and every covered
            sample is shaded and splatted. N > 0 = they are whole N×N-pixel tiles, drawn with
            probability ∝ the tile's residual when its view was last drawn (+ the view's mean
            residual, so that no tile is starved), until they hold `shading_fraction` of the
            pixels; with `splat_shading` only the samples within a pixel of a chosen tile (the
            splat's reach) are shaded. The term then goes where the surface is still wrong.
        init: "hull" (visual hull of the masks), "sphere", or a path to a mesh file.
        hull_resolution: grid points along the bbox's longest side for the visual hull (32).
        layers: depth layers for RtS splatting of the silhouette (2 resolves occlusions).
        regularizer_growth, step_decay: after each remesh λ_laplacian, λ_normal ×growth (the
            paper's 4), vertex lr ×0.75. On the Middlebury dino (16 real photos) ×2 left the
            surface wrinkled all over with 4–5 rollbacks, ×3 too; ×4 gives a clean surface (0 and 1
            rollbacks in two runs; 4 in a third, before untangling blended its seam). The cost is carving: the CSG part 0.684 % → 0.792 % (slots 63/57 % → 37/34 %
            carved), the pot about 0.03 points (0.294–0.336 % in three runs, 0.265–0.305 % at ×2).
        min_edge_px: remeshing never targets edges shorter than this many pixels of the images'
            footprint at the object (median over views); 0 follows the paper's halving exactly.
            Finer triangles than the images resolve only cost time (at 128 px the paper's last
            stage would be ~140K faces, several per pixel).
        smooth_steps: λ of Nicolet et al. 2021's "Large Steps" reparameterisation: vertex offsets are
            (I + λL)⁻¹·w with w the optimised parameter and L the combinatorial Laplacian, so each
            step is diffused over ~√λ edges (recon.mesh.smooth). 0 = plain Adam on the offsets
            (the paper). Meant for deep concavities the visual hull fills in, which need large,
            coherent moves (the paper's supplementary Fig. 14). Off by default: on the demo at
            128 px, λ = 10 stopped the drift away from a 64³ hull (0.77 % vs 0.93 % Chamfer after
            125 silhouette steps) but did not lower the final Chamfer or carve the bowl.
        splat_shading: RtS for the shading term too (Cole et al. 2021): every covered sample is
            shaded and splatted with its coverage into one image that gives both the silhouette and
            the shading term, so a colour moves with its surface point's projection and the
            shading term pulls the surface along the image (parallax between views). False is
            the paper: shading gradients reach the mesh only through the shader's inputs, too weak
            to carve concavities the visual hull fills in (its supplementary Fig. 14). On the demo
            at 128 px: Chamfer 0.834 % → 0.378 %, the bowl half carved.
        coarse_images: until the last remesh, work on the images halved (2×2 area average, K
            scaled with them); the last stage uses them as loaded. Coarse-to-fine in the images as
            the paper's remeshing is in the mesh: early stages make large moves that need no fine
            pixels, and a step costs ~2× less at half the side. False is the paper (one
            resolution). `--image-scale auto` on the CPU turns it on with the images loaded at
            long side ≤ 400 px: on the demo, 128² then 256² gives Chamfer 0.26 % where 128² all
            along gives 0.32 % (today 0.32 % in 75 s; 256² throughout 0.254 % in 135 s: the
            coarse stages' pixels limit the carving, README *Fewer small operations per step*).
        shader_precision: number format of the shader's matrix products while training: "auto"
            (bfloat16 on a CPU with native bfloat16 dot products, float32 elsewhere), "float32"
            or "bfloat16" (recon.precision). Weights, optimiser and everything but the products
            stay float32; viewing and export always use float32.
        pe_from_remesh: n > 0 = the shader's h(x) sees the raw position only until the n-th remesh
            (`remesh_at[n - 1]`): the positional encoding's weights in h's first layer start at
            zero and get no gradient until then, so they join from zero (no jump in the colours)
            and the network is the paper's from there on (files, viewer and GLSL see an ordinary
            shader). With the octaves from the start h(x) paints a concavity's shading onto the
            lid the visual hull leaves across it and the carving stalls; without them all along a
            texture is carved into the surface as bumps and appearance suffers (README *A smooth
            shader first*). 0 = the paper.
        views_per_step: views whose image terms are averaged in each step before the last remesh
            (the mesh terms once); 1 = the paper. The first stage carves the hull's lid over a
            concavity in a few hundred steps, and one view's push overshoots or stops short by a
            fifth of its depth, which the later stages barely undo: the demo's bowl ends at
            97–105 % over seeds 0–4 at 1 (100.7 ± 3.1 %). At 2 it ends at 97.6 ± 2.1 % (less
            scatter, 2 % shallow: the Laplacian's pull towards flat, which `weight_laplacian` 20
            takes away, 99.5 ± 1.8 %) and the pot's Chamfer 0.155 → 0.134 % on average over those
            seeds, but runs take ~40 % longer; 2 views in half the steps (the same work) is worse
            (README *Where the carving stops*, *The bowl's bias is the Laplacian's*). The CPU
            keeps 1.
        last_stage_views: views whose image terms are averaged in each step from the last remesh
            on (the mesh terms once); 1 = the paper's one view per step. The last stage moves faces
            that are nearly in place, and one view's push on them is mostly noise (README *Two
            views per step in the last stage*): 2 views over the CPU's 250 last steps see as many
            images as the paper's 500; runs took 15–33 % longer, the pot 0.231 / 0.187 % →
            0.183 / 0.156 % (two seeds), the part unchanged.
        last_stage_anneal: the vertex step's share at the last step: from the last remesh on it
            falls linearly from the schedule's to this share of it; 1 = the paper's constant step.
            Adam moves a vertex whose gradient is mostly noise by about a full step each time,
            whatever the noise's size, so at a constant step the nearly placed faces of the last
            stage keep wandering; a falling step lets them settle. On the CPU 0.1 (README *The
            vertex step annealed over the last stage*): the pot 0.183 / 0.156 → 0.168 / 0.152 %
            (two seeds), the part 0.438 / 0.460 → 0.433 / 0.459 % with its sides' spread halved,
            lego's held-out PSNR 22.76 → 22.91 dB, the dino as clean; no extra work.
        web_spacing: n > 0 = at each remesh the surface is also sampled again from its signed
            distance on a grid of n mean edge lengths (`recon.mesh.resample`), and that surface is
            remeshed instead where it has fewer handles or pieces (none more), its silhouettes
            over every view are as good (within 5 %) and it closes no background a mask shows
            through the object (`recon.methods.see_through`): a visual hull's tunnels leave pillars the
            optimisation thins into webs but cannot cut, and NDS otherwise keeps the genus of its
            start. On the CPU 2 (README *Webs cut at remeshing*): the ring benchmark's genus 4 → 1
            and Chamfer 0.366 → 0.269 %; the pot, the part, the dino and lego unchanged (every
            resampling that would lower their genus failed the silhouettes). 0 = the paper.
        checkpoint_every: iterations between checkpoints written by the runner.
        max_rollbacks: consecutive rolled-back steps after which the run stops with an error (the
            vertex step is then ~1e-6 of its value: nothing would move any more).
        intersection_every: steps between self-intersection checks of the mesh (also at the last
            step and after every remesh); a tangle found goes back, locally, to where it was at the
            last check (`NDSSession._untangle`). 0 checks only after remeshing.
        seed: seeds the view/pixel sampling and the shader's initial weights.
    """

    iterations: int = 2000
    remesh_at: tuple[int, ...] = (500, 1000, 1500)
    lr_vertices: float = 3e-3
    lr_shader: float = 1e-3
    weight_silhouette: float = 2.0
    weight_shading: float = 1.0
    weight_laplacian: float = 40.0
    weight_normal: float = 0.1
    shading_fraction: float = 0.75
    shading_tile: int = 0
    init: str = "hull"
    hull_resolution: int = 32
    layers: int = 2
    regularizer_growth: float = 4.0
    step_decay: float = 0.75
    min_edge_px: float = 1.0
    smooth_steps: float = 0.0
    splat_shading: bool = True
    coarse_images: bool = False
    shader_precision: str = "auto"
    pe_from_remesh: int = 0
    views_per_step: int = 1
    last_stage_views: int = 1
    last_stage_anneal: float = 1.0
    web_spacing: float = 0.0
    checkpoint_every: int = 100
    max_rollbacks: int = 20
    intersection_every: int = 100
    seed: int = 0
    shader: ShaderConfig = field(default_factory=ShaderConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "remesh_at", tuple(int(i) for i in self.remesh_at))
        if isinstance(self.shader, dict):
            try:
                object.__setattr__(self, "shader", ShaderConfig.from_dict(self.shader))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"invalid shader settings: {exc}") from None
        checks = {
            "iterations": self.iterations >= 0,
            "lr_vertices": self.lr_vertices > 0,
            "lr_shader": self.lr_shader > 0,
            "shading_fraction": 0 < self.shading_fraction <= 1,
            "shading_tile": self.shading_tile >= 0,
            "hull_resolution": 4 <= self.hull_resolution <= 512,
            "layers": 1 <= self.layers <= 8,
            "checkpoint_every": self.checkpoint_every >= 1,
            "max_rollbacks": self.max_rollbacks >= 1,
            "intersection_every": self.intersection_every >= 0,
            "min_edge_px": self.min_edge_px >= 0,
            "smooth_steps": self.smooth_steps >= 0,
            "splat_shading": isinstance(self.splat_shading, bool),
            "coarse_images": isinstance(self.coarse_images, bool),
            "shader_precision": self.shader_precision in PRECISIONS,
            "pe_from_remesh": 0 <= self.pe_from_remesh <= len(self.remesh_at),
            "views_per_step": self.views_per_step >= 1,
            "last_stage_views": self.last_stage_views >= 1,
            "last_stage_anneal": 0 < self.last_stage_anneal <= 1,
            "web_spacing": self.web_spacing >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"invalid NDS setting(s): {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}")

    @property
    def pe_unlock_iteration(self) -> int:
        """The iteration from which h(x) sees the positional encoding (`pe_from_remesh`)."""
        return self.remesh_at[self.pe_from_remesh - 1] if self.pe_from_remesh else 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["remesh_at"] = list(self.remesh_at)
        out["shader"] = self.shader.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NDSConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown NDS setting(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        return cls(**data)

    def replace(self, **changes: Any) -> NDSConfig:
        return NDSConfig.from_dict({**self.to_dict(), **changes})


# The CPU's default schedule: the paper's, with its last stage (on the full images) halved in
# steps, each of two views, so that it sees as many images, and its vertex step falling to a tenth.
CPU_SCHEDULE: dict[str, Any] = {
    "iterations": 1750,
    "remesh_at": (500, 1000, 1500),
    "last_stage_views": 2,
    "last_stage_anneal": 0.1,
}
# The CPU's shading term: half the in-mask pixels, as 16-px tiles drawn where the residual is.
CPU_SHADING: dict[str, Any] = {"shading_tile": 16, "shading_fraction": 0.5}
# The CPU's shader: half the paper's widths, h(x) of the raw position until the second remesh.
CPU_SHADER: dict[str, Any] = {"shader": {"hidden_h": 128, "features": 128}, "pe_from_remesh": 2}
# The CPU's remeshing also cuts the webs a hull's false tunnels leave, on a grid of two edges.
CPU_TOPOLOGY: dict[str, Any] = {"web_spacing": 2.0}


def auto_changes(device: str) -> dict[str, Any]:
    """The NDS settings `--image-scale auto` changes on `device` (the load scale is `recon.runs`').

    On CUDA none: one resolution and the paper's schedule. On the CPU the images are worked on
    halved until the last remesh (`coarse_images`), with the last stage 250 iterations long, of
    two views each and a vertex step falling to a tenth (`CPU_SCHEDULE`): the demo runs at 128²
    and finishes at 256², inside five minutes on two cores.
    The shading term takes half the in-mask pixels as residual-guided tiles (`CPU_SHADING`,
    `shading_tile`): a step at 256² 1.29× faster, the dino 12 % faster and as clean, quality
    within the scatter (the CSG part's wide slot carved 45–66 % of its depth against 35–37 %,
    Chamfer 0.70–0.82 % against 0.77–0.79 %; the pot 0.316–0.377 % in seven runs against 0.299–0.336 % in four).
    Not measured on CUDA yet, so CUDA keeps the paper's scattered 75 %.

    The shader is `CPU_SHADER`: half the paper's widths (a cheaper step), and h(x) sees the raw
    position only, without positional encoding, until the second remesh (`pe_from_remesh`): with
    the octaves from the start h(x) paints a concavity's shading onto the lid the visual hull
    leaves across it, and the carving stalls. On the demo 0.317 % → 0.224 % (bowl 88 → 102 %),
    on the CSG part 0.72 % → 0.53 % (slots 64 / 36 → 97 / 80 %), on the checkered pot 0.358 % →
    0.286 % (README *A smooth shader first*). CUDA keeps the paper's shader until measured there.

    Remeshing cuts webs (`CPU_TOPOLOGY`, `web_spacing`): the hull's false tunnels leave pillars
    NDS thins but cannot cut. Not measured on CUDA, which keeps the paper's remeshing.
    """
    if device != "cpu":
        return {}
    return {"coarse_images": True, **CPU_SCHEDULE, **CPU_SHADING, **CPU_SHADER, **CPU_TOPOLOGY}


def describe_levels(width: int, height: int, config: NDSConfig) -> str:
    """'W×H', or 'w×h, then W×H from iteration N' when the config starts on halved images."""
    if not config.coarse_images:
        return f"{width}×{height}"
    return f"{round(width / 2)}×{round(height / 2)}, then {width}×{height} from iteration {max(config.remesh_at, default=0)}"


def nds_config(iterations: int | None = None, /, **changes: Any) -> NDSConfig:
    """NDS defaults with `changes`; a given iteration count wins over any schedule in `changes`
    and keeps remeshing at the same fractions (1/4, 1/2, 3/4) of it."""
    if iterations is not None:
        defaults = NDSConfig()
        fractions = [i / defaults.iterations for i in defaults.remesh_at]
        changes = {k: v for k, v in changes.items() if k not in ("iterations", "remesh_at")}
        changes.update(iterations=iterations, remesh_at=[round(f * iterations) for f in fractions])
    return NDSConfig().replace(**changes)
