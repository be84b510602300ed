"""Neural Deferred Shading (Worchel et al. 2022) as a steppable session.

The session owns all optimisation state — mesh, vertex offsets, shader, both Adam optimisers, the
sampling RNG and the schedule position — so that `save`/`load` resume bit for bit, a GUI thread can
drive it one `step()` at a time, and nothing outside it holds a mutable tensor of it (`snapshot()`
hands out copies).

Everything runs in the normalised cube (bbox → [-1, 1]³): cameras are re-expressed there
(`normalized_camera`), so the mesh, the Laplacian weights and the learning rates are independent of
the dataset's units. Meshes are exported back in world units.

Silhouette gradients come from RtS splatting (render.splat), so the same code runs on CPU (GL
sampling) and CUDA (nvdiffrast sampling).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from recon.data.scene import Scene
from recon.errors import SessionError, StalledError  # noqa: F401  (SessionError re-exported: callers import it from here)
from recon.eval import topology
from recon.mesh import (
    Mesh,
    MeshError,
    check_mesh,
    laplacian_loss,
    load_mesh,
    normal_consistency_loss,
    ops,
    remesh,
    sphere,
    visual_hull,
)
from recon.mesh.checks import flipped_faces, self_intersecting_pairs
from recon.mesh.relax import relax_crossings
from recon.mesh.resample import nearest_points, resample_by_distance
from recon.mesh.smooth import SmoothParameterization
from recon.methods.config import NDSConfig, auto_changes, describe_levels, nds_config
from recon.methods.optim import weights_adam
from recon.methods.registry import Method
from recon.methods.see_through import closed_see_throughs, see_through_labels
from recon.methods.session import ImageLevels, Snapshot, StepRecord, seeded
from recon.precision import resolve_precision, with_precision
from recon.profiling import Profiler
from recon.shader import NeuralShader, drop_octave_gradients, hold_octaves
from render.renderer import Renderer
from render.splat import unpremultiply

log = logging.getLogger(__name__)

LOSS_TERMS = ("silhouette", "shading", "laplacian", "normal")
STEP_RECOVERY = 1.01  # per good step, a rolled-back vertex step grows back by this factor
UNDO_ROUNDS = 3  # rounds of undoing flipped faces (each can fold the faces around what it undid)
UNTANGLE_ROUNDS = 6  # tries at a tangle, the patch grown by 1, 2, 4, … rings each, before it is rolled back whole
MAX_UNDONE = (0.01, 16)  # more flipped faces than this share (or count, on small meshes) is a bad step: rolled back whole


class NDSSession(ImageLevels):
    """One NDS reconstruction: build from a Scene and an NDSConfig, then `step()` until done.

    Args:
        scene: the calibrated views (at the working resolution) and their bounding box.
        config: schedules, sizes and weights.
        device: where the optimisation runs ("cpu" or "cuda").
        renderer: rasterizer backend ("auto", "gl" or "nvdiffrast").
        profile: record per-stage times (Table 3 of the paper's supplementary).
    """

    def __init__(
        self,
        scene: Scene,
        config: NDSConfig | None = None,
        device: torch.device | str = "cpu",
        renderer: str = "auto",
        profile: bool = False,
        initial_mesh: Mesh | None = None,
    ) -> None:
        self.config = config or NDSConfig()
        self.device = torch.device(device)
        self.scene = scene
        self.normalization = scene.normalization()
        self.renderer = Renderer(renderer, self.device, layers=self.config.layers)
        self.profiler = Profiler(profile, self.device)
        self._set_levels(scene.views, self.config.coarse_images)

        self.generator = torch.Generator(device="cpu").manual_seed(self.config.seed)
        self.shader = seeded(lambda: NeuralShader(self.config.shader), self.config.seed, self.device)
        if self.config.pe_unlock_iteration > 0:
            hold_octaves(self.shader)
        self.shader_optimizer = weights_adam(self.shader.parameters(), self.config.lr_shader)
        self.precision = resolve_precision(self.config.shader_precision, self.device)
        self.training_shader = with_precision(self.shader, self.precision, self.device)
        log.info("shader products in %s", self.precision)

        self.iteration = 0
        self.lr_vertices = self.config.lr_vertices  # the step in use: halved by a rollback, then recovering
        self.lr_schedule = self.config.lr_vertices  # the step the schedule allows (×step_decay per remesh)
        self.weight_laplacian = self.config.weight_laplacian
        self.weight_normal = self.config.weight_normal
        self.history: list[dict[str, float | int | str | None]] = []
        self.rollbacks_in_a_row = 0  # the run stops at config.max_rollbacks (StalledError)
        self.tile_residuals: dict[str, torch.Tensor] = {}  # per image level "rowsxcols" (`shading_tile`)
        mesh = initial_mesh if initial_mesh is not None else self._initial_mesh()
        if initial_mesh is None:
            _refuse_broken(mesh, self.config.init)
        self._set_mesh(mesh.to(self.device), lr=self.lr_vertices)
        self._good = self._capture()

    # ---- set-up ------------------------------------------------------------------------------
    @property
    def coarse_until(self) -> int:
        """Halved images (`coarse_images`) until the last remesh."""
        return max(self.config.remesh_at, default=0)

    def _initial_mesh(self) -> Mesh:
        """The starting surface in normalised coordinates (visual hull by default, as in the paper)."""
        centre, scale = self.normalization
        init = self.config.init
        if init == "hull":
            world = visual_hull(self.scene.views, self.scene.bbox, resolution=self.config.hull_resolution)
            vertices = (world.vertices.double() - torch.from_numpy(centre)) * scale
            return Mesh(vertices.float(), world.faces)
        if init == "sphere":
            return sphere(radius=0.5, subdivisions=3)
        user = load_mesh(Path(init))
        vertices = (user.vertices.double() - torch.from_numpy(centre)) * scale
        return Mesh(vertices.float(), user.faces)

    def _set_mesh(self, mesh: Mesh, lr: float, crossings: int = 0) -> None:
        """Adopt a (new) base mesh: zero offsets, fresh vertex optimiser, connectivity cached once.

        `crossings`: pairs of its faces that intersect (a remeshed surface may keep some).
        """
        self.mesh = mesh
        self.offsets = torch.zeros_like(mesh.vertices, requires_grad=True)
        self.vertex_optimizer = torch.optim.Adam([self.offsets], lr=lr)
        self.lr_vertices = lr
        self._checked: int | None = None  # `_state_version` when `check_mesh` last passed
        self._mark_clean(crossings, self.iteration)
        _ = mesh.laplacian, mesh.face_adjacency, mesh.face_edges  # precompute (paper §3.3)
        if self.config.smooth_steps > 0:
            with self.profiler.section("smooth-step factorisation"):
                self.smoother = SmoothParameterization(mesh.num_vertices, mesh.edges, self.config.smooth_steps)
        else:  # the identity: the paper's plain steps on the offsets
            self.smoother = SmoothParameterization(mesh.num_vertices, mesh.edges, 0.0)

    @property
    def vertices(self) -> torch.Tensor:
        """Current vertices (V, 3) in normalised space, differentiable w.r.t. the offsets.

        With `smooth_steps` = λ > 0 the optimised parameter is w and the offsets are
        (I + λL)⁻¹·w (recon.mesh.smooth); with λ = 0 they are the parameter itself (the paper).
        """
        return self.mesh.vertices + self.smoother(self.offsets)

    @property
    def done(self) -> bool:
        return self.iteration >= self.config.iterations

    # ---- the loop ----------------------------------------------------------------------------
    def step(self) -> StepRecord:
        """One gradient step on a random view; remeshes on schedule; rolls back a step gone bad."""
        start = time.perf_counter()
        events: list[str] = []  # a step can both remesh and roll back: report both
        if self.iteration in self.config.remesh_at and self.iteration > 0:
            events.append(self._remesh())
        vertices = self.vertices
        if self._checked != self._state_version():  # something changed the state since the last check
            problems = check_mesh(vertices.detach(), self.mesh.faces, face_edges=self.mesh.face_edges)
            if problems:  # (or a bug): never continue from it
                events.append(self._rollback(f"invalid state before step: {'; '.join(problems)}"))
                vertices = self.vertices
        views = [int(torch.randint(len(self.cameras), (1,), generator=self.generator)) for _ in range(self._views_per_step())]
        face_cross = ops.face_normals(vertices, self.mesh.faces, normalize=False)  # the normals' and the normal term's
        losses, total = self._losses(views, vertices, face_cross)
        view = views[0]
        with self.profiler.section("backward"):
            self.vertex_optimizer.zero_grad(set_to_none=True)
            self.shader_optimizer.zero_grad(set_to_none=True)
            total.backward()
            if self._pe_held():
                drop_octave_gradients(self.shader)
        reason = self._bad_gradients(total)
        if reason is None:
            with self.profiler.section("descent step"):
                reference = F.normalize(face_cross.detach(), dim=-1, eps=ops.NORMAL_EPS)
                for group in self.vertex_optimizer.param_groups:  # the one place the step reaches the optimiser
                    group["lr"] = self.lr_vertices * self._annealing()
                self.vertex_optimizer.step()
                self.shader_optimizer.step()
            undone = self._undo_flips(reference)
            if undone:  # routine on fine meshes: not an event worth a line of its own
                log.debug("iteration %d: %d flipped faces undone", self.iteration, undone)
            problems = check_mesh(
                self.vertices.detach(), self.mesh.faces, reference_normals=reference, face_edges=self.mesh.face_edges
            )
            reason = "; ".join(problems) if problems else self._untangle(events)
        if reason is not None:
            events.append(self._rollback(reason))
            self.rollbacks_in_a_row += 1
        else:
            self._checked = self._state_version()
            self._recover_step()
            self._good = self._capture()
            self.rollbacks_in_a_row = 0
        self.iteration += 1
        event = "; ".join(events) or None
        values = {name: float(value.detach()) for name, value in losses.items()}
        record = StepRecord(self.iteration, values, float(total.detach()), time.perf_counter() - start, view, event)
        self.history.append({"iteration": record.iteration, **values, "total": record.total, "event": event})
        if self.rollbacks_in_a_row >= self.config.max_rollbacks:
            raise StalledError(
                f"the last {self.rollbacks_in_a_row} steps were all rolled back (last: {reason}); the run stopped at "
                f"iteration {self.iteration} with the last good state kept"
            )
        return record

    def _undo_flips(self, reference: torch.Tensor) -> int:
        """Put the vertices of faces this step flipped back where they were, and drop their momentum.

        A few slivers folding over is the usual failure of a good step on a fine mesh; rolling the
        whole step back and halving the vertex step for it made rollbacks a brake on every fine
        stage (the demo: 11 per run, the step at a fifth of the schedule's). Undoing only those
        vertices keeps the rest of the step. Faces around an undone vertex can fold in turn, so
        this repeats a few times; what is still flipped after that is left to `check_mesh` and a
        rollback. With `smooth_steps` a vertex depends on every offset, so nothing is undone here.

        Returns:
            how many flipped faces were undone (0 when none, or when undoing is not possible).
        """
        if self.config.smooth_steps > 0:
            return 0
        faces, good = self.mesh.faces, self._good["offsets"]
        state = self.vertex_optimizer.state.get(self.offsets, {})
        undone = 0
        for _ in range(UNDO_ROUNDS):
            flipped = flipped_faces(self.vertices.detach(), faces, reference)
            count = int(flipped.sum())
            if count == 0 or count > max(MAX_UNDONE[0] * self.mesh.num_faces, MAX_UNDONE[1]):
                break
            moved = faces[flipped].unique()
            with torch.no_grad():
                self.offsets[moved] = good[moved]
                if "exp_avg" in state:
                    state["exp_avg"][moved] = 0
            undone += count
        return undone

    def _pe_held(self) -> bool:
        """Whether h(x) still sees the raw position only (`NDSConfig.pe_from_remesh`)."""
        return self.iteration < self.config.pe_unlock_iteration

    def _untangle(self, events: list[str]) -> str | None:
        """Every `intersection_every` steps and at the last: put a tangle's neighbourhood back where it was untangled.

        Tangles grow over many steps (wrinkles sliding over one another, the two sides of a thin
        part meeting), so going back one step does not undo them: on the Middlebury dino, rolling
        back each checked step that added crossings made 7 rollbacks and left 324 crossing pairs
        in the final mesh. Here the vertices of the crossing faces, with a ring of neighbours,
        go back to where they were at the last check that found no more crossings than the
        remeshed surface had (`_clean`), their momentum dropped, and a band of 2 rings around
        them part of the way (linearly: a hard seam between restored and moved vertices crossed
        itself in 1 of 4 cases on the dino, however large the patch); patch and band double
        until nothing crosses, so the rest of the mesh keeps its progress.
        Only when that fails (or with `smooth_steps`, where every vertex depends on every
        parameter) does the whole mesh go back to that check, as a rollback.

        Returns:
            a rollback's reason, or None (an untangling is added to `events`).
        """
        every, done = self.config.intersection_every, self.iteration + 1
        if every <= 0 or (done % every and done != self.config.iterations):  # the last step too: the output
            return None
        faces = self.mesh.faces
        with self.profiler.section("self-intersection check"):
            pairs = self_intersecting_pairs(self.vertices.detach(), faces)
            found = len(pairs)
            if found <= self._clean_pairs:
                self._mark_clean(found, self.iteration + 1)
                return None
            if self.config.smooth_steps == 0:
                patch = torch.zeros(self.mesh.num_vertices, dtype=torch.bool, device=self.device)
                current = self.offsets.detach().clone()
                state = self.vertex_optimizer.state.get(self.offsets, {})
                for round_ in range(UNTANGLE_ROUNDS):
                    patch[faces[torch.from_numpy(pairs).to(self.device)].reshape(-1)] = True
                    patch = self._ring_distance(patch, 1 << round_) <= (1 << round_)
                    band = 2 << round_
                    back = (1 - self._ring_distance(patch, band) / (band + 1)).clamp(min=0)[:, None]
                    with torch.no_grad():
                        self.offsets.copy_(back * self._clean + (1 - back) * current)
                        if "exp_avg" in state:
                            state["exp_avg"][back[:, 0] > 0] = 0
                    pairs = self_intersecting_pairs(self.vertices.detach(), faces)
                    broken = check_mesh(self.vertices.detach(), faces, face_edges=self.mesh.face_edges)
                    if len(pairs) <= self._clean_pairs and not broken:
                        events.append(
                            f"untangled: {found} pairs of faces crossed; "
                            f"{int(patch.sum())} vertices back to iteration {self._clean_iteration}, "
                            f"{int(((back > 0) & (back < 1)).sum())} part of the way"
                        )
                        log.info("iteration %d: %s", self.iteration, events[-1])
                        self._mark_clean(len(pairs), self.iteration + 1)
                        return None
            self._good["offsets"] = self._clean.clone()  # the rollback goes back to the last clean check
        return f"{found} pairs of faces intersect each other; the whole mesh went back to iteration {self._clean_iteration}"

    def _mark_clean(self, pairs: int, iteration: int) -> None:
        """The current offsets (after `iteration` steps, with `pairs` crossing pairs) are where `_untangle` goes back to."""
        self._clean = self.offsets.detach().clone()
        self._clean_pairs = pairs
        self._clean_iteration = iteration

    def _ring_distance(self, patch: torch.Tensor, rings: int) -> torch.Tensor:
        """(V,) float: 0 in the patch, k on its k-th ring of neighbours, rings + 1 beyond `rings`."""
        distance = torch.full((self.mesh.num_vertices,), float(rings + 1), device=self.device)
        distance[patch] = 0
        reached = patch
        for k in range(1, rings + 1):
            grown = self._grown(reached)
            distance[grown & ~reached] = k
            reached = grown
        return distance

    def _grown(self, patch: torch.Tensor) -> torch.Tensor:
        """The vertex mask with its one-ring neighbours added."""
        a, b = self.mesh.edges[:, 0], self.mesh.edges[:, 1]
        grown = patch.clone()
        grown[b[patch[a]]] = True
        grown[a[patch[b]]] = True
        return grown

    def run(self, iterations: int | None = None) -> Iterator[StepRecord]:
        """Yield one StepRecord per step until `iterations` more steps (or the schedule) are done."""
        end = self.config.iterations if iterations is None else min(self.iteration + iterations, self.config.iterations)
        while self.iteration < end:
            yield self.step()

    def _state_version(self) -> int:
        """Changes with any write to the offsets (torch's version counter; `_set_mesh` forgets the check).

        A state that passed `check_mesh` after a step need not be checked again before the next
        (0.9 ms of a 45 ms CPU step at 28K faces); a rollback, an untangling or a remesh changes it.
        """
        return self.offsets._version

    def _annealing(self) -> float:
        """The vertex step's factor: 1 until the last remesh, then linearly to `last_stage_anneal` at the last step."""
        start, end = self.coarse_until, self.config.iterations
        if self.iteration < start or end <= start:
            return 1.0
        done = (self.iteration - start) / max(end - 1 - start, 1)
        return 1.0 + (self.config.last_stage_anneal - 1.0) * done

    def _views_per_step(self) -> int:
        """`last_stage_views` from the last remesh on, `views_per_step` before."""
        return self.config.last_stage_views if self.iteration >= self.coarse_until else self.config.views_per_step

    def _losses(
        self, views: list[int], vertices: torch.Tensor, face_cross: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The weighted terms of one step: the image terms averaged over `views`, the mesh terms once."""
        cfg, prof = self.config, self.profiler
        faces = self.mesh.faces
        terms = [self._image_terms(view, vertices, face_cross) for view in views]
        loss_silhouette = sum(t[0] for t in terms) / len(terms)
        loss_shading = sum(t[1] for t in terms) / len(terms)
        with prof.section("laplacian"):
            loss_laplacian = laplacian_loss(vertices, self.mesh.laplacian)
        with prof.section("normal consistency"):
            loss_normal = normal_consistency_loss(vertices, faces, self.mesh.face_adjacency, face_cross)
        losses = {
            "silhouette": cfg.weight_silhouette * loss_silhouette,
            "shading": cfg.weight_shading * loss_shading,
            "laplacian": self.weight_laplacian * loss_laplacian,
            "normal": self.weight_normal * loss_normal,
        }
        return losses, sum(losses.values())

    def _image_terms(self, view: int, vertices: torch.Tensor, face_cross: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unweighted silhouette and shading terms of one view."""
        cfg, prof = self.config, self.profiler
        faces = self.mesh.faces
        camera = self.cameras[view]
        with prof.section("g-buffers/rasterization"):
            frags, clip_m = self.renderer.sample(vertices, faces, camera)
        with prof.section("g-buffers/interpolation"):
            normals = ops.vertex_normals(vertices, faces, face_cross)
            gbuffer = self.renderer.evaluate(vertices, faces, camera, frags, clip_m, normals)
        if cfg.splat_shading:
            loss_silhouette, loss_shading = self._splatted_terms(view, gbuffer)
        else:
            with prof.section("silhouette"):
                silhouette = self.renderer.splat(gbuffer, self.renderer.shade_samples(gbuffer, None))[..., 0]
                loss_silhouette = (silhouette - self.silhouettes[view]).abs().mean()
            with prof.section("shading"):
                loss_shading = self._shading_loss(view, gbuffer)
        return loss_silhouette, loss_shading

    def _splatted_terms(self, view: int, gbuffer) -> tuple[torch.Tensor, torch.Tensor]:
        """Silhouette and shading terms from one RtS image of the shaded samples (`splat_shading`).

        Every covered sample of every layer is shaded and splatted with its coverage, so a
        pixel's colour moves with the projection of the surface point that produced it: the
        shading term then pulls geometry along the image (parallax between views), not only
        through the shader's inputs x, n, ω.
        """
        index, region = self._shaded_pixels(view, gbuffer)
        with self.profiler.section("shading"):
            samples = self.renderer.shade_samples(gbuffer, self.training_shader, where=region)
        with self.profiler.section("splatting"):
            image = self.renderer.splat(gbuffer, samples)
        loss_silhouette = (image[..., 3] - self.silhouettes[view]).abs().mean()
        if index.numel() == 0:
            return loss_silhouette, image.new_zeros(())
        colour = unpremultiply(image.reshape(-1, 4).index_select(0, index))
        residual = (colour - self.images[view].reshape(-1, 3)[index]).abs()
        self._record_residual(view, index, residual.detach())
        return loss_silhouette, residual.mean()

    def _shaded_pixels(self, view: int, gbuffer) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The shading term's pixels: `shading_fraction` of those inside both masks.

        Returns:
            their flat indices, and with `shading_tile` the (H, W) pixels whose samples must be
            shaded for them (the chosen tiles grown by the splat's one-pixel reach); None = all.
        """
        inside = gbuffer.covered[0] & (self.masks[view] > 0.5)
        if self.config.shading_tile > 0:
            return self._shaded_tiles(view, inside)
        index = inside.flatten().nonzero().squeeze(1)
        if index.numel() == 0:
            return index, None
        keep = int(math.ceil(self.config.shading_fraction * index.numel()))
        chosen = torch.randperm(index.numel(), generator=self.generator)[:keep].to(index.device)
        return index[chosen], None

    def _shaded_tiles(self, view: int, inside: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole tiles, drawn ∝ residual + the view's mean residual, until they hold `shading_fraction` of `inside`.

        Drawn without replacement by Gumbel top-k (the largest log w − log(−log u) first).
        """
        tile, (height, width) = self.config.shading_tile, inside.shape
        rows, cols = -(-height // tile), -(-width // tile)
        padded = torch.nn.functional.pad(inside, (0, cols * tile - width, 0, rows * tile - height))
        counts = padded.reshape(rows, tile, cols, tile).sum(dim=(1, 3)).flatten()
        candidates = counts.nonzero().squeeze(1)
        weight = self._tile_residuals(height, width)[view].flatten()[candidates]
        weight = weight + weight.mean()
        uniform = torch.rand(candidates.numel(), generator=self.generator).clamp(min=1e-12).to(weight.device)
        order = candidates[(weight.clamp(min=1e-12).log() - (-uniform.log()).log()).argsort(descending=True)]
        held = counts[order].cumsum(0)
        enough = int(math.ceil(self.config.shading_fraction * int(counts.sum())))
        chosen = torch.zeros(rows * cols, dtype=torch.bool, device=inside.device)
        chosen[order[: int((held < enough).sum()) + 1]] = True
        pixels = chosen.reshape(rows, 1, cols, 1).expand(rows, tile, cols, tile).reshape(rows * tile, cols * tile)
        pixels = pixels[:height, :width]
        reach = torch.nn.functional.max_pool2d(pixels[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
        return (inside & pixels).flatten().nonzero().squeeze(1), reach

    def _tile_residuals(self, height: int, width: int) -> torch.Tensor:
        """(views, rows, cols) mean L1 residual per tile of an image level (height × width) when last drawn (1 = never drawn)."""
        tile = self.config.shading_tile
        rows, cols = -(-height // tile), -(-width // tile)
        key = f"{rows}x{cols}"
        if key not in self.tile_residuals:
            self.tile_residuals[key] = torch.ones(len(self.cameras), rows, cols, device=self.device)
        return self.tile_residuals[key]

    def _record_residual(self, view: int, index: torch.Tensor, residual: torch.Tensor) -> None:
        """Store the drawn tiles' mean residual (`residual`: (N, 3) at the flat pixels `index`) for the next draw.

        A non-finite residual (a step about to be rolled back) is not stored: it would poison every later draw.
        """
        tile = self.config.shading_tile
        if tile == 0 or index.numel() == 0 or not bool(torch.isfinite(residual).all()):
            return
        height, width = self.masks[view].shape
        residuals = self._tile_residuals(height, width)
        which = (index // width // tile) * residuals.shape[2] + (index % width) // tile
        sums = residuals.new_zeros(residuals[view].numel()).index_add_(0, which, residual.sum(1))
        counts = residuals.new_zeros(residuals[view].numel()).index_add_(0, which, torch.ones_like(residual[:, 0]))
        drawn = counts > 0
        residuals[view].view(-1)[drawn] = sums[drawn] / counts[drawn]

    def _shading_loss(self, view: int, gbuffer) -> torch.Tensor:
        """L1 of the shader on the chosen front-layer pixels (the paper: gradients through x, n, ω only)."""
        index, _ = self._shaded_pixels(view, gbuffer)
        if index.numel() == 0:
            return gbuffer.position.new_zeros(())
        position = gbuffer.position[0].reshape(-1, 3)[index]
        normal = gbuffer.normal[0].reshape(-1, 3)[index]
        view_dir = gbuffer.view_dir[0].reshape(-1, 3)[index]
        colour = self.training_shader(position, normal, view_dir)
        residual = (colour - self.images[view].reshape(-1, 3)[index]).abs()
        self._record_residual(view, index, residual.detach())
        return residual.mean()

    def _bad_gradients(self, total: torch.Tensor) -> str | None:
        if not torch.isfinite(total):
            return "loss is not finite"
        grads = [g for g in [self.offsets.grad, *(p.grad for p in self.shader.parameters())] if g is not None]
        # Their largest |entry| in one pass (NaN and inf propagate): one test instead of one per tensor.
        if grads and not bool(torch.nn.utils.get_total_norm(grads, math.inf).isfinite()):
            return "gradients are not finite"
        return None

    # ---- safety ------------------------------------------------------------------------------
    def _capture(self) -> dict:
        """Copies of everything a step can spoil (cheap: offsets, shader and optimiser states)."""
        return {
            "offsets": self.offsets.detach().clone(),
            "vertex_optimizer": _clone_state(self.vertex_optimizer.state_dict()),
            "shader": {k: v.clone() for k, v in self.shader.state_dict().items()},
            "shader_optimizer": _clone_state(self.shader_optimizer.state_dict()),
        }

    def _rollback(self, reason: str) -> str:
        """Return to the last good state and halve the vertex step: a tangled mesh never survives.

        The step grows back over the following good steps (`_recover_step`).
        """
        good = self._good
        with torch.no_grad():
            self.offsets.copy_(good["offsets"])
        self.vertex_optimizer.load_state_dict(_clone_state(good["vertex_optimizer"]))
        self.shader.load_state_dict(good["shader"])
        self.shader_optimizer.load_state_dict(_clone_state(good["shader_optimizer"]))
        self.lr_vertices *= 0.5
        log.warning("iteration %d: %s; rolled back, vertex step now %.3g", self.iteration, reason, self.lr_vertices)
        return f"rollback: {reason}"

    def _recover_step(self) -> None:
        """After a good step, grow a rolled-back vertex step by 1 % towards the schedule's.

        A rollback's halving is meant to get past one bad spot; kept for the rest of the run it
        would stall the slow, shading-driven carving of concavities (~70 good steps undo it).
        """
        if self.lr_vertices < self.lr_schedule:
            self.lr_vertices = min(self.lr_schedule, self.lr_vertices * STEP_RECOVERY)

    def pixel_footprint(self) -> float:
        """Median size of one pixel at the bbox centre, in normalised units (depth / focal length).

        Pixels of the coarsest image level: with `coarse_images` the last stage sharpens the
        surface's position on the full images but keeps the mesh's resolution (a 1 px mesh at
        full resolution has 4× the faces and makes each step ~1.5× slower).
        """
        cameras = self._levels[-1][0]
        sizes = [abs(cam.t[2]) / np.sqrt(cam.K[0, 0] * cam.K[1, 1]) for cam in cameras]
        return float(np.median(sizes))

    def _remesh(self) -> str:
        """Botsch–Kobbelt to half the edge length; ×4 regularisers, ×0.75 vertex step (paper §3.3)."""
        with self.profiler.section("remeshing"):
            current = self.mesh.with_vertices(self.vertices.detach()).detach()
            mean_edge = float(current.edge_lengths().mean())
            floor = self.config.min_edge_px * self.pixel_footprint()
            if floor >= 0.9 * mean_edge:
                log.info("iteration %d: edges (%.4g) already at the images' resolution; no remesh", self.iteration, mean_edge)
                return "remesh skipped: edges already at the images' resolution"
            target = max(0.5 * mean_edge, floor)
            faces_before = current.num_faces
            current, cut = self._cut_webs(current, mean_edge)
            for factor in REMESH_TRIES:
                try:
                    finer = remesh(current, factor * target)
                except MeshError as exc:
                    log.warning("iteration %d: remeshing failed (%s); keeping the current mesh", self.iteration, exc)
                    return f"remesh skipped: {exc}"
                problems = check_mesh(finer.vertices, finer.faces)
                if not problems:
                    with self.profiler.section("remeshing/self-intersection check"):
                        finer, problems, crossings = _relaxed_remesh(current, finer, self.iteration)
                if not problems:
                    break
                log.info("iteration %d: remeshing to edges of %.4g: %s", self.iteration, factor * target, "; ".join(problems))
            else:
                log.warning("iteration %d: remeshed mesh rejected (%s); keeping the current mesh", self.iteration, problems)
                return f"remesh rejected: {'; '.join(problems)}"
            self.lr_schedule *= self.config.step_decay
            self._set_mesh(finer.to(self.device), lr=self.lr_vertices * self.config.step_decay, crossings=crossings)
            self.weight_laplacian *= self.config.regularizer_growth
            self.weight_normal *= self.config.regularizer_growth
            self._good = self._capture()
        log.info("iteration %d: remeshed to %d faces", self.iteration, finer.num_faces)
        return f"remeshed: {faces_before} → {finer.num_faces} faces" + (f"; {cut}" if cut else "")

    def _cut_webs(self, current: Mesh, mean_edge: float) -> tuple[Mesh, str | None]:
        """`current`, or its resampling by signed distance where that cuts what the images do not hold.

        The resampling (`recon.mesh.resample`, a grid of `web_spacing` mean edges) is adopted when
        it has fewer handles or pieces and no more of the other, and its silhouettes over every
        view, with its vertices put back onto the current surface, are within
        `WEB_SILHOUETTE_SLACK` of the current surface's, and close no background the masks show
        through the object that the current surface leaves open (`recon.methods.see_through`): it
        then cut webs the hull's pillars became, not a handle, a thin part or a narrow hole the masks
        show (on the pot, the Middlebury dino and lego every such resampling failed the first; a
        hole one view sees through costs the silhouettes over all views too little to fail it).
        Returns the surface to remesh and what was cut.
        """
        if self.config.web_spacing <= 0:
            return current, None
        with self.profiler.section("remeshing/web cut"):
            current_v, current_f = current.vertices.cpu().numpy(), current.faces.cpu().numpy()
            v, f = resample_by_distance(current_v, current_f, self.config.web_spacing * mean_edge)
            before, after = topology((current_v, current_f)), topology((v, f))
            shape_before, shape_after = (before["genus"], before["components"]), (after["genus"], after["components"])
            if None in shape_before + shape_after or shape_after == shape_before or any(a > b for a, b in zip(shape_after, shape_before)):
                return current, None
            put_back = Mesh.from_numpy(nearest_points(v, current_v, current_f), f, self.device)
            error_before, error_after, closed = self._compare_silhouettes(current, put_back)
        change = (f"genus {before['genus']} → {after['genus']}, {before['components']} → {after['components']} components "
                  f"(silhouette error {error_before:.4g} → {error_after:.4g})")
        if closed:
            where = ", ".join(f"{pixels} px in view {view}" for view, pixels in closed)
            log.info("iteration %d: resampling would change %s and close what the masks show through the object (%s): kept the surface",
                     self.iteration, change, where)
            return current, None
        if error_after > error_before * (1 + WEB_SILHOUETTE_SLACK) + WEB_SILHOUETTE_FLOOR:
            log.info("iteration %d: resampling would change %s: kept the surface", self.iteration, change)
            return current, None
        log.info("iteration %d: webs cut: %s", self.iteration, change)
        return Mesh.from_numpy(v, f, self.device), f"webs cut: {change}"

    def _compare_silhouettes(self, current: Mesh, proposed: Mesh) -> tuple[float, float, list[tuple[int, int]]]:
        """Both surfaces' mean |rendered − input mask| over every view, and (view, open pixels) of
        each see-through of the masks (`see_through_labels`) the current surface leaves open and the
        proposed one closes."""
        before, after, closed = [], [], []
        renders = zip(self.masks, self._alphas(current.vertices, current.faces), self._alphas(proposed.vertices, proposed.faces))
        for view, (mask, alpha_current, alpha_proposed) in enumerate(renders):
            before.append(float((alpha_current - mask).abs().mean()))
            after.append(float((alpha_proposed - mask).abs().mean()))
            closed += [(view, int(n)) for n in closed_see_throughs(see_through_labels(mask), alpha_current, alpha_proposed)]
        return float(np.mean(before)), float(np.mean(after)), closed

    @torch.no_grad()
    def _alphas(self, vertices: torch.Tensor, faces: torch.Tensor) -> Iterator[torch.Tensor]:
        """Each view's rendered coverage (H, W) of the surface (vertices #V,3, faces #F,3), one at a time."""
        for camera in self.cameras:
            yield self.renderer.render(vertices, faces, camera).alpha

    # ---- outputs -----------------------------------------------------------------------------
    def silhouette_error(self) -> float:
        """Mean |rendered − input mask| over every view: a deterministic progress measure."""
        alphas = self._alphas(self.vertices.detach(), self.mesh.faces)
        return float(np.mean([float((alpha - mask).abs().mean()) for alpha, mask in zip(alphas, self.masks)]))

    def snapshot(self) -> Snapshot:
        """Immutable copies of the current mesh and shader (safe to hand to another thread)."""
        last = self.history[-1] if self.history else {}
        return Snapshot(
            iteration=self.iteration,
            vertices=self.vertices.detach().cpu().numpy().copy(),
            faces=self.mesh.faces.cpu().numpy().copy(),
            shader_state={k: v.detach().cpu().clone() for k, v in self.shader.state_dict().items()},
            normalization=(self.normalization[0].copy(), float(self.normalization[1])),
            shader_config=self.config.shader,
            losses={k: float(v) for k, v in last.items() if k in LOSS_TERMS},
        )

    def close(self) -> None:
        """Free the rasterizer's GL context and render targets; call on the thread that stepped.

        A process that runs many sessions (the GUI) would otherwise keep one EGL context per
        finished session. The session's state stays readable; it cannot render or step again.
        """
        self.renderer.release()

    def save(self, folder: Path) -> Path:
        from recon.methods.checkpoint import save_checkpoint

        return save_checkpoint(self, Path(folder))

    @classmethod
    def load(
        cls, folder: Path, scene: Scene, device: torch.device | str = "cpu", renderer: str = "auto", profile: bool = False
    ) -> NDSSession:
        from recon.methods.checkpoint import load_checkpoint

        return load_checkpoint(cls, Path(folder), scene, device, renderer, profile)


# Edge lengths a remesh tries, as factors of the schedule's, until one gives a surface that
# crosses itself no more than the current one after `relax_crossings`: where sheets are closer
# than an edge, relaxing may not part them within its rounds, and a slightly coarser sampling
# lands elsewhere (a first relaxation, which widened its patch, kept 3 and 2 pairs of the dino's
# last remesh at ×1.0 and ×1.1 and none at ×1.2).
REMESH_TRIES = (1.0, 1.1, 1.2)

# How much worse (relative, and absolute in mean |alpha − mask|) the silhouettes over all views may
# get when webs are cut: resampling on a grid of two edges costs the ring's surface at its second
# remesh 2.5 % as it cuts the webs; the resamplings that would lower the genus of the pot (its
# handle), the Middlebury dino and lego cost 90–240 %.
WEB_SILHOUETTE_SLACK = 0.05
WEB_SILHOUETTE_FLOOR = 1e-4


def _relaxed_remesh(current: Mesh, finer: Mesh, iteration: int) -> tuple[Mesh, list[str], int]:
    """The remeshed surface with any crossings relaxed away (`relax_crossings`), the problems that
    reject it (more self-intersections than the surface it replaces, or a relaxation that broke
    it), and its crossing pairs. Before the relaxation one crossing pair rejected the remesh, and
    the rest of the run stayed at the coarser resolution (lego ended at 14K faces instead of 137K).
    Where umbrella smoothing leaves pairs, the relaxation that puts the means back onto the
    current surface's same-facing faces is tried too, and the one that leaves fewer is kept.
    """
    relaxed, after = relax_crossings(finer)
    if after:  # the whole patch may be on the other sheet: put the means back onto their own
        onto_own, left = relax_crossings(finer, source=current)
        if left < after:
            relaxed, after = onto_own, left
    if relaxed is not finer:
        log.info("iteration %d: remeshed surface crossed itself; relaxed, %d pairs left", iteration, after)
        problems = check_mesh(relaxed.vertices, relaxed.faces)
        if problems:
            return finer, problems, after
    before = len(self_intersecting_pairs(current.vertices, current.faces)) if after else 0
    return relaxed, ([f"{after} pairs of faces intersect each other (before remeshing: {before})"] if after > before else []), after


def _refuse_broken(mesh: Mesh, source: str) -> None:
    """A starting mesh every step would roll back from is refused, naming where it came from.

    Without this a non-manifold or self-intersecting start makes every step fail its checks:
    the run rolls back until the vertex step is ~0 and "succeeds" without moving.
    """
    problems = check_mesh(mesh.vertices, mesh.faces, self_intersections=True)
    if problems:
        what = source if source in ("hull", "sphere") else f"{source}: initial mesh"
        raise SessionError(f"{what} cannot be optimised: {'; '.join(problems)}; repair it (or use --init hull)")


def _clone_state(state: dict) -> dict:
    """Deep copy of an optimiser state_dict (tensors cloned) so later steps cannot alter it."""
    out = {"param_groups": [dict(g) for g in state["param_groups"]], "state": {}}
    for key, value in state["state"].items():
        out["state"][key] = {k: v.clone() if torch.is_tensor(v) else v for k, v in value.items()}
    return out


METHOD = Method(
    name="nds",
    title="NDS — neural deferred shading",
    config_type=NDSConfig,
    session_type=NDSSession,
    make_config=nds_config,
    auto_changes=auto_changes,
    describe_levels=describe_levels,
)
