"""What every reconstruction method's session offers, so the runner and both front ends drive any of them.

A method's session owns all of its optimisation state and is stepped one iteration at a time
(`step`, or `run` for many); `snapshot()` hands out immutable copies that carry everything needed
to show and shade them (mesh, shader weights and config, normalisation), so a viewer or exporter
on another thread needs nothing else; `save`/`load` resume it bit for bit from a checkpoint folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from recon.data.scene import Scene, View
from recon.mesh import Mesh
from recon.profiling import Profiler
from recon.run_folder import RunAppearance
from recon.methods.dvr_field import DVRFieldConfig, DVRTextureShader
from recon.shader import NeuralShader, Normalization, ShaderConfig, shader_from_config
from render.camera import Camera
from render.renderer import Renderer
from render.splat import splatted_coverage


def normalized_camera(camera: Camera, centre: np.ndarray, scale: float) -> Camera:
    """The same view for points given in normalised coordinates x_n = (x − centre)·scale.

    x_c = R·x + t = R·(x_n/scale + centre) + t, and scaling x_c by `scale` leaves pixels unchanged,
    so R stays and t becomes scale·(R·centre + t).
    """
    return Camera(camera.K, camera.R, scale * (camera.R @ centre + camera.t), camera.width, camera.height)


def seeded(build: Callable[[], torch.nn.Module], seed: int, device: torch.device) -> torch.nn.Module:
    """`build()` with its initial weights drawn from `seed`, the global RNG untouched, on `device`:
    a run's seed decides its network as it decides its view and pixel draws."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().to(device)


@dataclass(frozen=True)
class StepRecord:
    """What one iteration did: weighted loss terms, their sum, seconds, and any rollback or remesh."""

    iteration: int
    losses: dict[str, float]
    total: float
    seconds: float
    view: int
    event: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """An immutable copy of a session for viewers and exporters (numpy + CPU tensors).

    It carries the shader's config with its weights, so whoever shades it needs nothing else.
    The appearance is NDS's neural shader f(x, n, ω) (`shader_config` a `ShaderConfig`) or DVR's
    position-only texture field t(x) (a `DVRFieldConfig`); `shader()` rebuilds either, both
    called as f(x, n, ω) (DVR's ignores n and ω). `colors`: optional (V, 3) sRGB vertex colours
    the method computed itself (DVR: t at the vertices), written into mesh.ply.
    """

    iteration: int
    vertices: np.ndarray  # (V, 3) float32, normalised space
    faces: np.ndarray  # (F, 3) int64
    shader_state: dict[str, torch.Tensor]
    normalization: tuple[np.ndarray, float]
    shader_config: ShaderConfig | DVRFieldConfig
    losses: dict[str, float] = field(default_factory=dict)
    colors: np.ndarray | None = None

    @property
    def world_vertices(self) -> np.ndarray:
        centre, scale = self.normalization
        return (self.vertices.astype(np.float64) / scale + centre).astype(np.float32)

    def shader(self) -> NeuralShader | DVRTextureShader:
        """A fresh CPU shader with the snapshot's weights (the one place one is rebuilt from it)."""
        shader = shader_from_config(self.shader_config)
        shader.load_state_dict(self.shader_state)
        return shader.eval()

    def appearance(self, shader: NeuralShader | None = None) -> RunAppearance:
        """World mesh, shader (`shader`, e.g. the live one of a session, or the snapshot's) and normalisation."""
        mesh = Mesh(torch.from_numpy(self.world_vertices), torch.from_numpy(np.asarray(self.faces, np.int64)))
        return RunAppearance(mesh, self.shader() if shader is None else shader, self.normalization)


class ImageLevels:
    """The views at the images' resolution and, with `coarse_images`, halved until `coarse_until`:
    which level an iteration works on (shared by the sessions that render the views).

    A session calls `_set_levels` once it has `normalization` and `device`, and says until which
    iteration it works on the halved images (NDS: its last remesh; rts-sdf: its last upsampling).
    """

    iteration: int
    device: torch.device
    normalization: Normalization
    _levels: list[tuple[list[Camera], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]]

    def _set_levels(self, views: list[View], coarse_images: bool) -> None:
        self._levels = [self._level(views)]
        if coarse_images:
            self._levels.append(self._level([v.scaled(0.5) for v in views]))

    def _level(self, views: list[View]) -> tuple[list[Camera], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Cameras (in normalised coordinates), images, masks and silhouette targets of the views, on the device."""
        centre, scale = self.normalization
        cameras = [normalized_camera(v.camera, centre, scale) for v in views]
        images = [torch.from_numpy(v.image).to(self.device) for v in views]
        masks = [torch.from_numpy(v.mask).to(self.device) for v in views]
        return cameras, images, masks, [splatted_coverage(mask) for mask in masks]

    @property
    def coarse_until(self) -> int:
        raise NotImplementedError

    @property
    def coarse(self) -> bool:
        """Whether this iteration works on the halved images."""
        return len(self._levels) > 1 and self.iteration < self.coarse_until

    def level_sizes(self) -> list[tuple[int, tuple[int, int]]]:
        """(from iteration, image width and height) of each level, coarse first: what the front ends
        report as the working resolution, read from the cameras the steps use."""
        sizes = [(camera.width, camera.height) for camera in (level[0][0] for level in self._levels)]
        if len(sizes) == 1:
            return [(0, sizes[0])]
        return [(0, sizes[1]), (self.coarse_until, sizes[0])]

    @property
    def cameras(self) -> list[Camera]:
        """The views' cameras at the current image level, in normalised coordinates."""
        return self._levels[int(self.coarse)][0]

    @property
    def images(self) -> list[torch.Tensor]:
        return self._levels[int(self.coarse)][1]

    @property
    def masks(self) -> list[torch.Tensor]:
        return self._levels[int(self.coarse)][2]

    @property
    def silhouettes(self) -> list[torch.Tensor]:
        """The masks as a splatted render of the true surface would show them (`splatted_coverage`):
        what the silhouette term compares a splatted render's alpha with."""
        return self._levels[int(self.coarse)][3]


class MethodConfig(Protocol):
    """A method's frozen settings: saved in run.json and the checkpoint, rebuilt from that dict."""

    iterations: int
    checkpoint_every: int

    def to_dict(self) -> dict[str, Any]: ...

    def replace(self, **changes: Any) -> MethodConfig: ...


class Session(Protocol):
    """The protocol of a method's session (NDSSession is the reference implementation)."""

    config: Any  # the method's MethodConfig; `iterations` may be raised to extend a resumed run
    scene: Scene
    normalization: Normalization
    iteration: int
    history: list[dict[str, Any]]
    device: torch.device
    renderer: Renderer
    profiler: Profiler
    shader: NeuralShader | DVRTextureShader

    @property
    def done(self) -> bool: ...

    def step(self) -> StepRecord: ...

    def run(self, iterations: int | None = None) -> Iterator[StepRecord]: ...

    def snapshot(self) -> Snapshot: ...

    def save(self, folder: Path) -> Path: ...

    def close(self) -> None: ...

    @classmethod
    def load(cls, folder: Path, scene: Scene, device: torch.device | str = "cpu", renderer: str = "auto",
             profile: bool = False) -> Session: ...
