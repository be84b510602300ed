"""RtS-SDF: the surface is the zero level set of a signed-distance grid, rendered by rasterize-then-splat.

Cole et al. 2021 §3.1.3 and §4.5: each step Marching Cubes extracts the current level set (not
differentiable), the GL rasterizer samples it per view, and `render.isosurface.evaluate_isosurface`
re-evaluates the sampled lattice edges differentiably, so image gradients reach the grid values
through the edge crossings α = f_a / (f_a − f_b). The G-buffer is the mesh path's, so the same
`NeuralShader` as NDS shades it and the same splatted silhouette + shading loss drives it: a run
folder (mesh, shader, run.json, checkpoint) is indistinguishable from an NDS one to eval, export,
materials and the viewer.

Unlike a mesh, the level set can change topology between steps. A raw grid left to the image
terms alone grows handles and islands wherever the images do not constrain it (measured in
`render/isosurface.py`'s notes), so the grid is started as a true signed distance (to the visual
hull, or a sphere) and kept one by an eikonal term, with a curvature (Laplacian) term for
smoothness, both on a narrow band around the surface (the only values that matter, and cheap).

The grid lives in the normalised cube (bbox → [-1, 1]³, `Scene.normalization`), spans
[-`extent`, `extent`]³ and is refined coarse-to-fine (trilinear upsampling at `upsample_at`).
Its outer shell is kept outside (≥ one cell), so the extracted level set is always closed and
the exported mesh (`min_gap` = 0) watertight.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recon.data.scene import Scene
from recon.errors import SessionError
from recon.methods.checkpoint_file import CheckpointKind, check_views, read_record, restore_common, saved_config, write_checkpoint
from recon.methods.config import ConfigError
from recon.methods.optim import weights_adam
from recon.methods.registry import Method
from recon.methods.session import ImageLevels, Snapshot, StepRecord, seeded
from recon.precision import PRECISIONS, resolve_precision, with_precision
from recon.profiling import Profiler
from recon.shader import NeuralShader, ShaderConfig
from render.isosurface import IsoMesh, Lattice, evaluate_isosurface, extract_isosurface, sample_isosurface, trilinear
from render.raymarch import camera_rays, ray_box
from render.renderer import Renderer
from render.splat import unpremultiply

log = logging.getLogger(__name__)

LOSS_TERMS = ("silhouette", "shading", "freespace", "eikonal", "curvature")
OPTIMIZERS = ("sgd", "adam")
CHECKPOINT = CheckpointKind("reconstruct.rts-sdf-checkpoint", 1, "an rts-sdf")


@dataclass(frozen=True)
class RtsSdfConfig:
    """Schedules, sizes and weights of one RtS-SDF reconstruction.

    Attributes:
        iterations: gradient steps in total.
        resolutions: lattice points per axis of each grid stage, coarse to fine (64³ → 128³).
        upsample_at: iterations at which the grid moves to the next of `resolutions` (one fewer
            entries than `resolutions`, increasing); the values are trilinearly resampled.
        extent: the lattice spans [-extent, extent]³ of the normalised cube (the bbox is [-1, 1]³).
        optimizer: "adam" or "sgd" (plain gradient steps on the grid, as the paper does for its
            density grid). On the full demo, 1000 iterations each, Adam carved the bowl SGD left
            filled (Chamfer 0.487 % against 0.790 %, README); the shader always uses Adam.
        lr_grid: step on the grid values, in normalised units per step (Adam: 3e-3, a twelfth of
            a 64³ cell) or per unit gradient (SGD); multiplied by `step_decay` at each upsampling
            (0.4: the 128³ cell is half the 64³ one, and the last stage finishes rather than moves).
        max_step: with SGD, no value moves by more than this many cells in one step (its gradient
            is clipped): dα/df grows as 1/(f_a − f_b)², so a few values on nearly flat edges get
            huge gradients and would spike (seen on the demo: |∇f| up to 60 in the band). 0 = off,
            the default: 0.1 did not change the small demo's Chamfer (1.093 % → 1.107 %, one run).
        lr_shader: Adam step of the shader (NDS: 1e-3).
        weight_silhouette, weight_shading: λ of the splatted silhouette and shading L1 terms (NDS's
            2 and 1).
        weight_freespace: λ of the mean of max(−f, 0) at `freespace_samples` jittered points along
            the rays of up to `freespace_rays` background pixels (mask < 0.5) the render covers:
            the masks say those rays meet nothing, so any inside value on them is pushed out. The
            image terms cannot do that: inside a rendered silhouette no small move changes the
            coverage, so an unopened hole or a speck left behind by a shrinking start gets no
            gradient from them (DVR's freespace loss, on the grid).
        weight_eikonal: λ of mean (|∇f| − 1)² over the band: keeps the grid a signed distance, so
            values away from the surface stay away from zero (no spurious islands or handles).
        weight_curvature: λ of mean (h·Δf)² over the band (Δf is twice the mean curvature of an
            SDF's level sets; h the cell size, so the term does not depend on the resolution).
        band: the regularisers act where |f| < band cells (the values the images can move).
        min_component: every `prune_every` iterations (and in the exported mesh), inside
            components (6-connected lattice points with f < 0) of fewer points than this are set
            one cell outside, the largest always kept: specks a shrinking start leaves behind
            where no background pixel sees them (the torus benchmark had 5, in its hole). 64 is a
            4-cell cube; 0 keeps every component.
        prune_every: iterations between those prunings.
        init: "hull" (signed distance to the visual hull of the masks) or "sphere" (radius 0.8).
        hull_resolution: grid points along the bbox's longest side for the visual hull.
        shading_fraction: share of the pixels inside both masks in the shading term per step.
        layers: RtS depth layers.
        min_gap: samples on lattice edges whose values differ by less than this many cells are
            dropped at sampling (α is singular there; RtS §3.1.3).
        coarse_images: before the last grid stage, work on the images halved (as NDS's option).
        shader_precision: number format of the shader's matrix products while training, as NDS's
            (recon.precision: "auto" is bfloat16 on a CPU with native bfloat16, else float32).
        checkpoint_every: iterations between checkpoints written by the runner.
        seed: seeds the view/pixel sampling and the shader's initial weights.
    """

    iterations: int = 1750
    resolutions: tuple[int, ...] = (64, 128)
    upsample_at: tuple[int, ...] = (1400,)
    extent: float = 1.1
    optimizer: str = "adam"
    lr_grid: float = 3e-3
    max_step: float = 0.0
    lr_shader: float = 1e-3
    weight_silhouette: float = 2.0
    weight_shading: float = 1.0
    weight_freespace: float = 1.0
    freespace_rays: int = 512
    freespace_samples: int = 64
    weight_eikonal: float = 0.1
    weight_curvature: float = 0.01
    band: float = 3.0
    min_component: int = 64
    prune_every: int = 100
    init: str = "hull"
    hull_resolution: int = 64
    shading_fraction: float = 0.75
    layers: int = 2
    min_gap: float = 1e-4
    step_decay: float = 0.4
    coarse_images: bool = False
    shader_precision: str = "auto"
    checkpoint_every: int = 100
    seed: int = 0
    shader: ShaderConfig = field(default_factory=ShaderConfig)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "resolutions", tuple(int(r) for r in self.resolutions))
            object.__setattr__(self, "upsample_at", tuple(int(i) for i in self.upsample_at))
        except (TypeError, ValueError):
            raise ConfigError(
                f"rts-sdf resolutions and upsample_at must be lists of integers, got {self.resolutions!r}, {self.upsample_at!r}"
            ) from None
        if isinstance(self.shader, dict):
            try:
                object.__setattr__(self, "shader", ShaderConfig.from_dict(self.shader))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"invalid shader settings: {exc}") from None
        checks = {
            "iterations": self.iterations >= 0,
            "resolutions": len(self.resolutions) >= 1 and all(8 <= r <= 512 for r in self.resolutions),
            "upsample_at": len(self.upsample_at) == len(self.resolutions) - 1
            and all(a < b for a, b in zip(self.upsample_at, self.upsample_at[1:]))
            and all(i > 0 for i in self.upsample_at),
            "extent": self.extent >= 1.0,
            "optimizer": self.optimizer in OPTIMIZERS,
            "lr_grid": self.lr_grid > 0,
            "lr_shader": self.lr_shader > 0,
            "max_step": self.max_step >= 0,
            "weight_silhouette": self.weight_silhouette >= 0,
            "weight_shading": self.weight_shading >= 0,
            "weight_freespace": self.weight_freespace >= 0,
            "freespace_rays": self.freespace_rays >= 1,
            "freespace_samples": self.freespace_samples >= 1,
            "weight_eikonal": self.weight_eikonal >= 0,
            "weight_curvature": self.weight_curvature >= 0,
            "band": self.band >= 1,
            "min_component": self.min_component >= 0,
            "prune_every": self.prune_every >= 1,
            "init": self.init in ("hull", "sphere"),
            "hull_resolution": 4 <= self.hull_resolution <= 512,
            "shading_fraction": 0 < self.shading_fraction <= 1,
            "layers": 1 <= self.layers <= 8,
            "min_gap": self.min_gap >= 0,
            "step_decay": 0 < self.step_decay <= 1,
            "coarse_images": isinstance(self.coarse_images, bool),
            "shader_precision": self.shader_precision in PRECISIONS,
            "checkpoint_every": self.checkpoint_every >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            hints = {
                "resolutions": "8..512 points per axis",
                "upsample_at": "one positive, increasing iteration per stage after the first",
                "optimizer": "sgd or adam",
                "shader_precision": " or ".join(PRECISIONS),
                "init": "hull or sphere (a mesh file is an NDS start)",
            }
            raise ConfigError(
                "invalid rts-sdf setting(s): "
                + ", ".join(f"{b}={getattr(self, b)!r}" + (f" ({hints[b]})" if b in hints else "") for b in bad)
            )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["resolutions"] = list(self.resolutions)
        out["upsample_at"] = list(self.upsample_at)
        out["shader"] = self.shader.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RtsSdfConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown rts-sdf setting(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    def replace(self, **changes: Any) -> RtsSdfConfig:
        return RtsSdfConfig.from_dict({**self.to_dict(), **changes})


def rts_sdf_config(iterations: int | None = None, /, **changes: Any) -> RtsSdfConfig:
    """Defaults with `changes`; a given iteration count keeps the upsampling at the same fractions."""
    if iterations is not None:
        default = RtsSdfConfig()
        fraction = default.upsample_at[0] / default.iterations
        n = len(tuple(changes.get("resolutions", default.resolutions))) - 1
        stages = [max(1, round(iterations * fraction ** (n - k))) for k in range(n)] if n else []
        stages = [max(s, i + 1) for i, s in enumerate(stages)]  # strictly increasing even for tiny counts
        changes = {k: v for k, v in changes.items() if k not in ("iterations", "upsample_at")}
        changes.update(iterations=iterations, upsample_at=stages)
    return RtsSdfConfig().replace(**changes)


def auto_changes(device: str) -> dict[str, Any]:
    """On the CPU, the images halved until the last grid stage (as NDS); on CUDA nothing."""
    return {"coarse_images": True} if device == "cpu" else {}


def describe_levels(width: int, height: int, config: RtsSdfConfig) -> str:
    grids = " → ".join(f"{r}³" for r in config.resolutions)
    if not config.coarse_images or not config.upsample_at:
        return f"{width}×{height}, grid {grids}"
    return f"{round(width / 2)}×{round(height / 2)}, then {width}×{height} from iteration {config.upsample_at[-1]}; grid {grids}"


class RtsSdfSession(ImageLevels):
    """One RtS-SDF reconstruction: build from a Scene and an RtsSdfConfig, then `step()` until done."""

    def __init__(
        self,
        scene: Scene,
        config: RtsSdfConfig | None = None,
        device: torch.device | str = "cpu",
        renderer: str = "auto",
        profile: bool = False,
        initial_grid: torch.Tensor | None = None,
    ) -> None:
        self.config = config or RtsSdfConfig()
        self.device = torch.device(device)
        self.scene = scene
        self.normalization = scene.normalization()
        self.renderer = Renderer(renderer, self.device, layers=self.config.layers)
        self.profiler = Profiler(profile, self.device)
        self._set_levels(scene.views, self.config.coarse_images)
        self.generator = torch.Generator(device="cpu").manual_seed(self.config.seed)
        self.shader = seeded(lambda: NeuralShader(self.config.shader), self.config.seed, self.device)
        self.shader_optimizer = weights_adam(self.shader.parameters(), self.config.lr_shader)
        self.precision = resolve_precision(self.config.shader_precision, self.device)
        self.training_shader = with_precision(self.shader, self.precision, self.device)
        self.iteration = 0
        self.history: list[dict[str, Any]] = []
        self._surface: IsoMesh | None = None
        grid = initial_grid if initial_grid is not None else self._initial_grid()
        self._set_grid(grid, self.config.lr_grid)

    # ---- set-up ------------------------------------------------------------------------------
    @property
    def stage(self) -> int:
        """Index into `resolutions` of the grid stage this iteration belongs to."""
        return sum(self.iteration >= i for i in self.config.upsample_at)

    @property
    def coarse_until(self) -> int:
        """Halved images (`coarse_images`) until the last upsampling."""
        return max(self.config.upsample_at, default=0)

    def lattice(self, resolution: int | None = None) -> Lattice:
        """The lattice of a resolution, or of the stage this iteration belongs to."""
        n = self.config.resolutions[self.stage] if resolution is None else resolution
        return Lattice.cube(n, self.config.extent)

    @property
    def cell(self) -> float:
        return float(self.lattice_now.spacing[0])

    def _initial_grid(self) -> torch.Tensor:
        """Signed distance (normalised units, negative inside) to the visual hull or a sphere."""
        lattice = self.lattice(self.config.resolutions[0])
        points = lattice.points(dtype=torch.float64).reshape(-1, 3)
        if self.config.init == "sphere":
            values = points.norm(dim=1) - 0.8
        else:
            import gpytoolbox

            from recon.mesh import visual_hull

            centre, scale = self.normalization
            world = visual_hull(self.scene.views, self.scene.bbox, resolution=self.config.hull_resolution)
            vertices = (world.vertices.double().numpy() - centre) * scale
            distance, _, _ = gpytoolbox.signed_distance(points.numpy(), vertices, world.faces.numpy())
            values = torch.from_numpy(np.asarray(distance, dtype=np.float64))
        return values.reshape(lattice.shape).float()

    def _set_grid(self, values: torch.Tensor, lr: float) -> None:
        """Adopt grid values (any of the stages' cubic shapes): outer shell outside, fresh grid optimiser.

        The lattice follows the values' shape, not the iteration: a checkpoint written just before
        an upsampling holds the coarse grid, and the next step upsamples it.
        """
        n = values.shape[0]
        if values.ndim != 3 or tuple(values.shape) != (n, n, n) or n not in self.config.resolutions:
            raise SessionError(f"grid of shape {tuple(values.shape)} is none of the configured {self.config.resolutions}")
        self.lattice_now = Lattice.cube(n, self.config.extent)
        self.grid = values.detach().to(self.device, torch.float32).clone().requires_grad_(True)
        with torch.no_grad():
            self._close_shell()
        self.lr_grid = lr
        if self.config.optimizer == "adam":
            self.grid_optimizer: torch.optim.Optimizer = torch.optim.Adam([self.grid], lr=lr)
        else:
            self.grid_optimizer = torch.optim.SGD([self.grid], lr=lr)
        self._surface = None

    @torch.no_grad()
    def _close_shell(self) -> None:
        """Keep the lattice's outer layer at least one cell outside: the level set stays closed."""
        g, floor = self.grid, self.cell
        for axis in range(3):
            for end in (0, -1):
                face = g.select(axis, end)
                face.clamp_(min=floor)

    @property
    def done(self) -> bool:
        return self.iteration >= self.config.iterations

    # ---- the loop ----------------------------------------------------------------------------
    def surface(self) -> IsoMesh:
        """The current level set for sampling (cached until the grid changes; `mesh_arrays` exports)."""
        if self._surface is None:
            with self.profiler.section("marching cubes"):
                self._surface = extract_isosurface(self.grid.detach(), self.lattice_now, 0.0, self.config.min_gap * self.cell)
        return self._surface

    def step(self) -> StepRecord:
        """One gradient step on a random view; upsamples the grid on schedule; skips a bad step."""
        start = time.perf_counter()
        events: list[str] = []
        if self.iteration in self.config.upsample_at:
            events.append(self._upsample())
        if self.iteration % self.config.prune_every == 0 and self.iteration > 0:
            with self.profiler.section("pruning"), torch.no_grad():
                specks = self._specks(self.grid)
                if specks.any():
                    self.grid[specks] = self.cell
                    self._surface = None
                    events.append(f"pruned {int(specks.sum())} lattice points of specks")
        surface = self.surface()
        if len(surface.faces) == 0:
            raise SessionError(
                f"iteration {self.iteration}: the level set vanished (no surface left in the grid); "
                f"lower lr_grid (now {self.lr_grid:g}) or check the masks"
            )
        view = int(torch.randint(len(self.cameras), (1,), generator=self.generator))
        losses, total = self._losses(view, surface)
        with self.profiler.section("backward"):
            self.grid_optimizer.zero_grad(set_to_none=True)
            self.shader_optimizer.zero_grad(set_to_none=True)
            total.backward()
        reason = self._bad_gradients(total)
        if reason is None:
            with self.profiler.section("descent step"):
                if self.config.optimizer == "sgd" and self.config.max_step > 0 and self.grid.grad is not None:
                    bound = self.config.max_step * self.cell / self.lr_grid
                    self.grid.grad.clamp_(-bound, bound)
                self.grid_optimizer.step()
                self.shader_optimizer.step()
                self._close_shell()
            self._surface = None
        else:
            log.warning("iteration %d: %s; step skipped", self.iteration, reason)
            events.append(f"skipped: {reason}")
        self.iteration += 1
        event = "; ".join(events) or None
        values = {name: float(value.detach()) for name, value in losses.items()}
        record = StepRecord(self.iteration, values, float(total.detach()), time.perf_counter() - start, view, event)
        self.history.append({"iteration": record.iteration, **values, "total": record.total, "event": event})
        return record

    def run(self, iterations: int | None = None) -> Iterator[StepRecord]:
        end = self.config.iterations if iterations is None else min(self.iteration + iterations, self.config.iterations)
        while self.iteration < end:
            yield self.step()

    def _losses(self, view: int, surface: IsoMesh) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        cfg, prof = self.config, self.profiler
        camera = self.cameras[view]
        with prof.section("g-buffers/rasterization"):
            samples = sample_isosurface(self.renderer.rasterizer, surface, camera, cfg.layers, self.device)
        with prof.section("g-buffers/evaluation"):
            gbuffer = evaluate_isosurface(samples, self.grid, camera)
        with prof.section("shading"):
            shaded = self.renderer.shade_samples(gbuffer, self.training_shader)
        with prof.section("splatting"):
            image = self.renderer.splat(gbuffer, shaded)
        silhouette = (image[..., 3] - self.silhouettes[view]).abs().mean()
        index = self._shaded_pixels(view, gbuffer)
        if index.numel():
            colour = unpremultiply(image.reshape(-1, 4).index_select(0, index))
            shading = (colour - self.images[view].reshape(-1, 3)[index]).abs().mean()
        else:
            shading = image.new_zeros(())
        with prof.section("freespace"):
            freespace = self._freespace(view, gbuffer) if cfg.weight_freespace > 0 else image.new_zeros(())
        with prof.section("grid regularisers"):
            eikonal, curvature = self._regularisers()
        losses = {
            "silhouette": cfg.weight_silhouette * silhouette,
            "shading": cfg.weight_shading * shading,
            "freespace": cfg.weight_freespace * freespace,
            "eikonal": cfg.weight_eikonal * eikonal,
            "curvature": cfg.weight_curvature * curvature,
        }
        return losses, sum(losses.values())

    def _shaded_pixels(self, view: int, gbuffer) -> torch.Tensor:
        """Flat indices of a random `shading_fraction` of the pixels inside both masks (as NDS)."""
        inside = gbuffer.covered[0] & (self.masks[view] > 0.5)
        index = inside.flatten().nonzero().squeeze(1)
        if index.numel() == 0:
            return index
        keep = int(math.ceil(self.config.shading_fraction * index.numel()))
        chosen = torch.randperm(index.numel(), generator=self.generator)[:keep].to(index.device)
        return index[chosen]

    def _freespace(self, view: int, gbuffer) -> torch.Tensor:
        """Mean max(−f, 0) along the rays of background pixels the render covers (see the config)."""
        cfg = self.config
        wrong = (gbuffer.covered[0] & (self.masks[view] < 0.5)).flatten().nonzero().squeeze(1)
        if wrong.numel() == 0:
            return self.grid.sum() * 0
        if wrong.numel() > cfg.freespace_rays:
            wrong = wrong[torch.randperm(wrong.numel(), generator=self.generator)[: cfg.freespace_rays].to(wrong.device)]
        camera = self.cameras[view]
        pixels = torch.stack([wrong % camera.width, wrong // camera.width], dim=1).to(torch.float64) + 0.5
        rays = camera_rays(camera, pixels, device=self.device)
        half = self.config.extent
        t_near, t_far, _ = ray_box(rays, (-half,) * 3, (half,) * 3)
        n = cfg.freespace_samples
        jitter = torch.rand((len(wrong), n), generator=self.generator).to(self.device)
        t = t_near[:, None] + (t_far - t_near)[:, None] * (torch.arange(n, device=self.device) + jitter) / n
        points = rays.origins[:, None] + t[..., None] * rays.directions[:, None]
        values = trilinear(self.grid, self.lattice_now, points.reshape(-1, 3))
        return torch.relu(-values).mean()

    def _regularisers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eikonal (|∇f| − 1)² and curvature (h·Δf)², means over interior points with |f| < band cells."""
        g, h = self.grid, self.cell
        nx, ny, nz = g.shape
        with torch.no_grad():
            near = g.abs() < self.config.band * h
            near[[0, -1]] = False
            near[:, [0, -1]] = False
            near[:, :, [0, -1]] = False
            index = near.reshape(-1).nonzero().squeeze(1)
        if index.numel() == 0:
            zero = g.sum() * 0
            return zero, zero
        flat = g.reshape(-1)
        centre = flat[index]
        grads, laplacian = [], -6 * centre
        for stride in (ny * nz, nz, 1):
            plus, minus = flat[index + stride], flat[index - stride]
            grads.append((plus - minus) / (2 * h))
            laplacian = laplacian + plus + minus
        norm = torch.sqrt(sum(d * d for d in grads) + 1e-12)
        eikonal = ((norm - 1) ** 2).mean()
        curvature = ((laplacian / h) ** 2).mean()  # (h·Δf)² with Δf ≈ Σ second differences / h²
        return eikonal, curvature

    def _bad_gradients(self, total: torch.Tensor) -> str | None:
        if not torch.isfinite(total):
            return "loss is not finite"
        grads = [self.grid.grad] + [p.grad for p in self.shader.parameters()]
        if any(gr is not None and not torch.isfinite(gr).all() for gr in grads):
            return "gradients are not finite"
        return None

    def _upsample(self) -> str:
        """Trilinear resampling onto the next stage's lattice; grid step × step_decay, fresh optimiser."""
        with self.profiler.section("upsampling"):
            old, old_lattice = self.grid.detach(), self.lattice_now
            new_lattice = self.lattice()  # `stage` already counts this iteration
            points = new_lattice.points(dtype=torch.float32, device=self.device).reshape(-1, 3)
            values = torch.cat([trilinear(old, old_lattice, points[i : i + (1 << 18)]) for i in range(0, len(points), 1 << 18)])
            self._set_grid(values.reshape(new_lattice.shape), self.lr_grid * self.config.step_decay)
        log.info("iteration %d: grid upsampled to %s", self.iteration, "×".join(map(str, new_lattice.shape)))
        return f"grid upsampled: {old_lattice.shape[0]}³ → {new_lattice.shape[0]}³"

    # ---- outputs -----------------------------------------------------------------------------
    def _specks(self, values: torch.Tensor) -> torch.Tensor:
        """Lattice points (bool, the grid's shape) of inside components smaller than `min_component`."""
        from scipy import ndimage

        if self.config.min_component == 0:
            return torch.zeros_like(values, dtype=torch.bool)
        labels, count = ndimage.label((values < 0).cpu().numpy())
        if count <= 1:
            return torch.zeros_like(values, dtype=torch.bool)
        sizes = np.bincount(labels.reshape(-1))
        small = sizes < self.config.min_component
        small[0] = False  # outside
        small[np.argmax(np.where(np.arange(len(sizes)) > 0, sizes, -1))] = False  # the largest stays
        return torch.from_numpy(small[labels]).to(values.device)

    def mesh_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(vertices (V, 3) float32 normalised, faces (F, 3) int64) of the level set without specks,
        unreferenced vertices dropped. The grid itself is not changed (a snapshot must not be)."""
        values = self.grid.detach().clone()
        values[self._specks(values)] = self.cell
        iso = extract_isosurface(values, self.lattice_now, 0.0, 0.0)
        faces = iso.faces
        used, inverse = np.unique(faces.reshape(-1), return_inverse=True)
        return iso.vertices[used].astype(np.float32), inverse.reshape(-1, 3).astype(np.int64)

    @torch.no_grad()
    def silhouette_error(self) -> float:
        """Mean |rendered − input mask| over every view."""
        surface = self.surface()
        errors = []
        for camera, mask in zip(self.cameras, self.masks):
            alpha = self.renderer.render_isosurface(self.grid.detach(), surface, camera).alpha
            errors.append(float((alpha - mask).abs().mean()))
        return float(np.mean(errors))

    def snapshot(self) -> Snapshot:
        vertices, faces = self.mesh_arrays()
        last = self.history[-1] if self.history else {}
        return Snapshot(
            iteration=self.iteration,
            vertices=vertices,
            faces=faces,
            shader_state={k: v.detach().cpu().clone() for k, v in self.shader.state_dict().items()},
            normalization=(self.normalization[0].copy(), float(self.normalization[1])),
            shader_config=self.config.shader,
            losses={k: float(v) for k, v in last.items() if k in LOSS_TERMS},
        )

    def close(self) -> None:
        """Free the renderer's GL context (the GUI runs many sessions); call on the thread that stepped."""
        self.renderer.release()

    def save(self, folder: Path) -> Path:
        """One safetensors file (grid, shader, optimiser states, RNG) with a JSON record; atomic."""
        return write_checkpoint(folder, CHECKPOINT, self, self._optimizers(), {"lr_grid": self.lr_grid}, {"grid": self.grid})

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"grid_optimizer": self.grid_optimizer, "shader_optimizer": self.shader_optimizer}

    @classmethod
    def load(
        cls, folder: Path, scene: Scene, device: torch.device | str = "cpu", renderer: str = "auto", profile: bool = False
    ) -> RtsSdfSession:
        record, tensors = read_record(folder, CHECKPOINT)
        check_views(folder, record, scene)
        # written before the freespace term existed: resume as started
        config = saved_config(folder, RtsSdfConfig, {"weight_freespace": 0.0, **record["config"]})
        session = cls(scene, config, device=device, renderer=renderer, profile=profile, initial_grid=tensors["grid"])
        restore_common(session, folder, record, tensors, session._optimizers())
        session.lr_grid = record["lr_grid"]
        return session

METHOD = Method(
    name="rts-sdf",
    title="RtS-SDF — signed-distance grid (topology-free)",
    config_type=RtsSdfConfig,
    session_type=RtsSdfSession,
    make_config=rts_sdf_config,
    auto_changes=auto_changes,
    describe_levels=describe_levels,
)
