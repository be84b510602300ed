"""Mitsuba 3 as a peer of `bench render`: the same gradient step, timed in its `llvm_ad_rgb` variant.

The task is the one `shared/peers.md` fixes, so that the ratio means what it meant when measured by
hand: the same mesh, camera and image size; one forward + backward with respect to the vertex
positions; 4 spp, a box filter, no interior sampling (`sppi=0`); the target is the same scene with
the mesh moved ~7 px. Silhouette: the mesh is a white area emitter with a black BSDF,
`prb_projective` with `max_depth=1`. Shaded: a grey diffuse BSDF under one directional light,
`direct_projective`. Every step writes the vertex positions back, which rebuilds Mitsuba's BVH
as an optimiser's step would; the first step compiles its LLVM kernels and is timed on its own.

Mitsuba is optional (`pip install 'reconstruct[peers]'`) and imported only here, only when asked for.
"""

from __future__ import annotations

import importlib
import statistics
import subprocess
import sys
import time
from types import ModuleType

import numpy as np

from render.camera import Camera

VARIANT = "llvm_ad_rgb"
SPP = 4
SHIFT_PX = 7.0
TASKS = ("silhouette", "shaded")
_INSTALL_LLVM = "install libllvm19 (apt-get install libllvm19)"
# Dr.Jit finds a libLLVM that it cannot compile with (Debian's LLVM 15) only when a kernel aborts
# the process, so the check runs a kernel that needs `fminimum` in a child process.
_LLVM_PROBE = (
    "import drjit as dr; print(*dr.detail.llvm_version(), flush=True); "
    "dr.eval(dr.minimum(dr.llvm.Float([1.0, 2.0]), 1.5))"
)


def unavailable_reason(module: str = "mitsuba") -> str | None:
    """None when `module` (Mitsuba) imports and Dr.Jit's LLVM backend runs kernels, else why not, in one line."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"{module} is not importable ({exc}); pip install 'reconstruct[peers]'"
    probe = subprocess.run([sys.executable, "-c", _LLVM_PROBE], capture_output=True, text=True, timeout=120)
    if probe.returncode == 0:
        return None
    version = probe.stdout.split()
    if not version or version[0] == "-1":
        return f"Dr.Jit finds no usable libLLVM; {_INSTALL_LLVM}"
    return f"Dr.Jit's kernels abort with libLLVM {'.'.join(version)}; {_INSTALL_LLVM}"


def _mitsuba() -> ModuleType:
    import mitsuba as mi

    mi.set_variant(VARIANT)
    # Its one warning here asks for film border samples in case the mesh leaves the image; the
    # benchmark's camera frames the whole mesh, so the warning would only be noise on stderr.
    mi.set_log_level(mi.LogLevel.Error)
    return mi


def _sensor(camera: Camera) -> dict:
    """The perspective sensor that sees what `camera` sees, pixel for pixel (centred, square pixels)."""
    mi = _mitsuba()
    # OpenCV camera axes (x right, y down, z forward) → Mitsuba's (x left, y up, z forward).
    to_world = np.eye(4)
    to_world[:3, :3] = camera.R.T @ np.diag([-1.0, -1.0, 1.0])
    to_world[:3, 3] = camera.center
    fov_x = np.degrees(2 * np.arctan(camera.width / (2 * camera.K[0, 0])))
    return {
        "type": "perspective",
        "fov": float(fov_x),
        "fov_axis": "x",
        "to_world": mi.ScalarTransform4f(to_world.tolist()),
        "film": {"type": "hdrfilm", "width": camera.width, "height": camera.height, "rfilter": {"type": "box"}},
        "sampler": {"type": "independent", "sample_count": SPP},
    }


def _mesh(task: str, vertices: np.ndarray, faces: np.ndarray) -> object:
    mi = _mitsuba()
    props = mi.Properties()
    if task == "silhouette":
        props["bsdf"] = mi.load_dict({"type": "diffuse", "reflectance": {"type": "rgb", "value": [0.0, 0.0, 0.0]}})
        props["emitter"] = mi.load_dict({"type": "area", "radiance": {"type": "rgb", "value": [1.0, 1.0, 1.0]}})
    else:
        props["bsdf"] = mi.load_dict({"type": "diffuse", "reflectance": {"type": "rgb", "value": [0.5, 0.5, 0.5]}})
    mesh = mi.Mesh("mesh", len(vertices), len(faces), props=props, has_vertex_normals=False)
    params = mi.traverse(mesh)
    params["vertex_positions"] = mi.Float(np.ascontiguousarray(vertices, dtype=np.float32).ravel())
    params["faces"] = mi.UInt(np.ascontiguousarray(faces, dtype=np.uint32).ravel())
    params.update()
    return mesh


class MitsubaStep:
    """One task's scene and target; calling it does one timed-step's work and returns (loss, dL/dvertices)."""

    def __init__(self, task: str, vertices: np.ndarray, faces: np.ndarray, camera: Camera, shift_px: float = SHIFT_PX):
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        mi = self._mi = _mitsuba()
        self.vertices = np.asarray(vertices, dtype=np.float32)
        # The target's mesh is moved along the image's x axis by `shift_px` pixels at the mesh's centre.
        _, depth = camera.project(self.vertices.mean(0, keepdims=True))
        self.shift = (camera.R.T @ np.array([shift_px * float(depth[0]) / camera.K[0, 0], 0.0, 0.0])).astype(np.float32)
        scene: dict = {"type": "scene", "sensor": _sensor(camera), "mesh": _mesh(task, self.vertices, faces)}
        if task == "silhouette":
            scene["integrator"] = {"type": "prb_projective", "max_depth": 1, "sppi": 0}
        else:
            light = camera.R.T @ np.array([0.3, 0.5, 1.0])  # from above-left of the camera
            scene["integrator"] = {"type": "direct_projective", "sppi": 0}
            scene["light"] = {"type": "directional", "direction": light.tolist(), "irradiance": {"type": "rgb", "value": 3.0}}
        self.scene = mi.load_dict(scene)
        self.params = mi.traverse(self.scene)
        self.target = self.image(self.vertices + self.shift)  # at 16 spp: the loss's noise is the step's own
        self._seed = 0

    def _set_positions(self, vertices: np.ndarray, grad: bool = False) -> None:
        """Writes the mesh's vertex positions; the update rebuilds the BVH, as after an optimiser's step."""
        import drjit as dr

        positions = self._mi.Float(np.ascontiguousarray(vertices, dtype=np.float32).ravel())
        if grad:
            dr.enable_grad(positions)
        self.params["mesh.vertex_positions"] = positions
        self.params.update()

    def image(self, vertices: np.ndarray, spp: int = 4 * SPP) -> object:
        """The task's rendering (a Dr.Jit tensor) with the mesh at `vertices`, without gradient."""
        self._set_positions(vertices)
        return self._mi.render(self.scene, spp=spp, seed=2**20)

    def loss(self, vertices: np.ndarray, spp: int = 4 * SPP) -> float:
        """The task's L1 loss against the target with the mesh at `vertices` (no gradient), for checks."""
        return float(np.abs(np.asarray(self.image(vertices, spp)) - np.asarray(self.target)).mean())

    def __call__(self) -> tuple[float, np.ndarray]:
        import drjit as dr

        mi = self._mi
        self._set_positions(self.vertices, grad=True)
        self._seed += 1
        image = mi.render(self.scene, self.params, spp=SPP, seed=self._seed)
        loss = dr.mean(dr.abs(image - self.target), axis=None)
        dr.backward(loss)
        grad = dr.grad(self.params["mesh.vertex_positions"])
        dr.eval(grad)
        dr.sync_thread()
        return float(loss.array[0]), np.asarray(grad).reshape(-1, 3)


def bench_mitsuba(vertices: np.ndarray, faces: np.ndarray, camera: Camera, repeats: int) -> dict:
    """Per task: the warm-up step (LLVM compilation included) and the median of `repeats` more, in ms."""
    out: dict = {}
    for task in TASKS:
        step = MitsubaStep(task, vertices, faces, camera)
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            step()
            times.append(1000 * (time.perf_counter() - start))
        out[f"{task}_warmup_ms"] = times[0]
        out[f"{task}_step_ms"] = statistics.median(times[1:])
    return out


def describe() -> dict:
    """What was timed: versions, variant, samples and Dr.Jit's thread count (Mitsuba must be importable)."""
    import drjit as dr

    mi = _mitsuba()
    return {
        "version": mi.__version__,
        "drjit": dr.__version__,
        "llvm": ".".join(map(str, dr.detail.llvm_version())),
        "variant": VARIANT,
        "spp": SPP,
        "threads": dr.thread_count(),
        "shift_px": SHIFT_PX,
    }
