"""A corpus of broken and hostile inputs: each is refused with exit code 2 and one line naming the file.

Every case builds its input in its own folder, runs the CLI in-process (an uncaught exception
fails the test with its traceback) and checks that nothing in that folder was written or
changed. The README's "Bad input" table lists these kinds and what each gives.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from recon.cli import main
from recon.data.formats import nds
from recon.data.scene import View
from render.camera import Camera

GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


# ---- inputs that are fine, to break --------------------------------------------------------------
def _views(n: int = 4, width: int = 40, height: int = 32) -> list[View]:
    views = []
    for i in range(n):
        angle = np.pi / 2 * i
        eye = np.array([2.5 * np.cos(angle), 0.8, 2.5 * np.sin(angle)])
        cam = Camera.look_at(eye, np.zeros(3), np.array([0.0, 1.0, 0.0]), 45.0, width, height)
        mask = np.zeros((height, width), np.float32)
        mask[10:22, 14:26] = 1
        views.append(View(f"cam{i}", np.dstack([mask] * 3), mask, cam))
    return views


def nds_set(root: Path) -> Path:
    return nds.write(_views(), np.array([[-0.4, -0.3, -0.4], [0.4, 0.3, 0.4]]), root / "set")


def blender_set(root: Path) -> Path:
    """A NeRF-synthetic dataset (transforms_train.json, RGBA PNGs in train/) of the same views."""
    folder = root / "nerf"
    (folder / "train").mkdir(parents=True)
    frames = []
    for i, view in enumerate(_views()):
        rgba = np.dstack([view.image, view.mask])
        iio.imwrite(folder / "train" / f"r_{i}.png", (rgba * 255).astype(np.uint8))
        c2w = np.eye(4)
        c2w[:3, :3], c2w[:3, 3] = view.camera.R.T, view.camera.center
        frames.append({"file_path": f"./train/r_{i}", "transform_matrix": (c2w @ GL_TO_CV).tolist()})
    angle = 2 * math.atan(0.5 * 40 / _views()[0].camera.K[0, 0])
    (folder / "transforms_train.json").write_text(json.dumps({"camera_angle_x": angle, "frames": frames}))
    return folder


def colmap_set(root: Path) -> Path:
    """A COLMAP text model (one pinhole camera) with images/ and masks/ of the same views."""
    folder = root / "colmap"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    (folder / "sparse" / "0").mkdir(parents=True)
    views = _views()
    K = views[0].camera.K
    (folder / "sparse" / "0" / "cameras.txt").write_text(f"1 PINHOLE 40 32 {K[0, 0]} {K[1, 1]} {K[0, 2]} {K[1, 2]}\n")
    lines = []
    for i, view in enumerate(views):
        iio.imwrite(folder / "images" / f"c{i}.png", (view.image * 255).astype(np.uint8))
        iio.imwrite(folder / "masks" / f"c{i}.png.png", (view.mask * 255).astype(np.uint8))
        q = _quaternion(view.camera.R)
        lines += [" ".join(map(str, [i + 1, *q, *view.camera.t, 1, f"c{i}.png"])), ""]
    (folder / "sparse" / "0" / "images.txt").write_text("\n".join(lines) + "\n")
    return folder


def _quaternion(R: np.ndarray) -> list[float]:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return [w, x, y, z]


def outside_png(root: Path) -> Path:
    """A readable image outside every dataset: what a hostile path would make the loader read."""
    path = root / "elsewhere" / "secret.png"
    path.parent.mkdir(exist_ok=True)
    iio.imwrite(path, np.full((32, 40, 4), 255, np.uint8))
    return path


@pytest.fixture(scope="module")
def run_folder(small_demo, tmp_path_factory) -> Path:
    """A finished two-iteration run with a stored clustering, copied by each case that breaks it."""
    out = tmp_path_factory.mktemp("bad-input") / "run"
    assert main(["run", str(small_demo), "--out", str(out), "--iterations", "2", "--image-scale", "1",
                 "--renderer", "gl", "--device", "cpu"]) == 0
    assert main(["materials", str(out), "--k", "2", "--samples", "300"]) == 0
    return out


# ---- editing helpers --------------------------------------------------------------------------
def edit_json(path: Path, change: Callable[[dict], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def put(path: Path, data: str | bytes) -> Path:
    """Write `data` over `path`; returns the path (the file the refusal must name)."""
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def edit_checkpoint(path: Path, tensors: Callable[[dict], None] | None = None, record: Callable[[dict], None] | None = None) -> None:
    from safetensors.torch import load, save

    data = path.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    meta = json.loads(header["__metadata__"]["record"])
    values = dict(load(data))
    if tensors:
        tensors(values)
    if record:
        record(meta)
    path.write_bytes(save(values, metadata={"record": json.dumps(meta)}))


def write_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    import trimesh

    trimesh.Trimesh(vertices, faces, process=False).export(path)
    return path


TETRA = np.array([[0, 0, 0], [0.3, 0, 0], [0, 0.3, 0], [0, 0, 0.3]], float)
TETRA_FACES = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


def _pickle_file(path: Path) -> None:
    torch.save({"mesh/vertices": torch.zeros(3, 3)}, path)  # a pickle: must never be unpickled


def _symlink_image(folder: Path, target: Path) -> None:
    image = folder / "train" / "r_0.png"
    image.unlink()
    image.symlink_to(target)


def _nan_rotation(folder: Path) -> None:
    (folder / "cam2_r.txt").write_text("1 0 0\n0 1 0\n0 0 nan\n")


def _non_manifold_mesh(path: Path) -> Path:
    # A closed tetrahedron plus a fin: three faces on the edge 0–1.
    v = np.vstack([TETRA, [[0.15, -0.3, 0.0]]])
    return write_mesh(path, v, np.vstack([TETRA_FACES, [[0, 1, 4]]]))


# Each case: (id, kind, build(tmp) -> (argv, file the message must name)). `run` is the run folder's copy.
def _dataset_cases():
    yield "dataset-missing", lambda t, run: (["info", str(t / "nothing")], t / "nothing")
    yield "dataset-empty-folder", lambda t, run: ((t / "e").mkdir() or ["info", str(t / "e")], t / "e")

    def nds_nan(t, run):
        folder = nds_set(t)
        _nan_rotation(folder)
        return ["info", str(folder)], folder / "cam2_r.txt"

    yield "nds-nan-rotation", nds_nan

    def nds_empty_image(t, run):
        folder = nds_set(t)
        image = next(folder.glob("cam1*.png"))
        image.write_bytes(b"")
        return ["info", str(folder)], image

    yield "nds-empty-image", nds_empty_image

    def nds_text_image(t, run):
        folder = nds_set(t)
        image = next(folder.glob("cam1*.png"))
        image.write_text("not an image")
        return ["info", str(folder)], image

    yield "nds-image-not-an-image", nds_text_image

    def nerf(change, named=None):
        def build(t, run):
            folder = blender_set(t)
            path = folder / "transforms_train.json"
            result = change(folder, path, t)
            return ["info", str(folder)], named(folder, t) if named else (result or path)

        return build

    yield "nerf-truncated-json", nerf(lambda f, p, t: truncate(p))
    yield "nerf-empty-json", nerf(lambda f, p, t: put(p, ""))
    yield "nerf-top-level-list", nerf(lambda f, p, t: put(p, "[]"))
    yield "nerf-angle-string", nerf(lambda f, p, t: edit_json(p, lambda d: d.update(camera_angle_x="wide")))
    yield "nerf-angle-nan", nerf(lambda f, p, t: edit_json(p, lambda d: d.update(camera_angle_x=float("nan"))))
    yield "nerf-matrix-wrong-shape", nerf(
        lambda f, p, t: edit_json(p, lambda d: d["frames"][1].update(transform_matrix=[[1, 0], [0, 1]])))
    yield "nerf-matrix-inf", nerf(
        lambda f, p, t: edit_json(p, lambda d: d["frames"][1]["transform_matrix"][0].__setitem__(3, float("inf"))))
    yield "nerf-frames-not-a-list", nerf(lambda f, p, t: edit_json(p, lambda d: d.update(frames={"a": 1})))
    yield "nerf-absolute-image-path", nerf(
        lambda f, p, t: edit_json(p, lambda d: d["frames"][0].update(file_path=str(outside_png(t)))))
    yield "nerf-dotdot-image-path", nerf(
        lambda f, p, t: edit_json(p, lambda d: d["frames"][0].update(
            file_path=str(Path("..") / outside_png(t).relative_to(t)))))
    yield "nerf-symlink-out-of-dataset", nerf(lambda f, p, t: _symlink_image(f, outside_png(t)))

    def colmap(change):
        def build(t, run):
            folder = colmap_set(t)
            path = folder / "sparse" / "0" / "images.txt"
            named = change(path, t) or path
            return ["info", str(folder)], named

        return build

    def rename(first: Callable[[Path], str]):
        def change(path: Path, t: Path):
            lines = path.read_text().splitlines()
            lines[0] = lines[0].rsplit(" ", 1)[0] + " " + first(t)
            path.write_text("\n".join(lines) + "\n")

        return change

    yield "colmap-absolute-image-name", colmap(rename(lambda t: str(outside_png(t))))
    yield "colmap-dotdot-image-name", colmap(rename(lambda t: str(Path("../..") / outside_png(t).relative_to(t))))
    yield "colmap-truncated-images", colmap(lambda p, t: put(p, p.read_text()[:40]))
    yield "colmap-cameras-garbage", colmap(
        lambda p, t: put(p.parent / "cameras.txt", "1 PINHOLE forty 32 1 1 1 1\n"))


def _mesh_cases():
    def init(make):
        def build(t, run):
            mesh = make(t / "init.ply")
            return ["run", str(nds_set(t)), "--out", str(t / "out"), "--iterations", "2", "--init", str(mesh)], mesh

        return build

    yield "init-mesh-empty-file", init(lambda p: put(p, b""))
    yield "init-mesh-nan-vertex", init(lambda p: write_mesh(p, np.where(np.arange(12).reshape(4, 3) == 5, np.nan, TETRA), TETRA_FACES))
    yield "init-mesh-non-manifold-edge", init(_non_manifold_mesh)
    yield "init-mesh-pickle", init(lambda p: _pickle_file(p) or p)

    def reference(t, run):
        ref = t / "ref.ply"
        put(ref, "ply\nformat ascii 1.0\nelement vertex 99\n")
        return ["eval", str(run / "mesh.ply"), "--reference", str(ref)], ref

    yield "eval-reference-truncated", reference


def _run_folder_cases():
    def broken(change, command="resume"):
        def build(t, run):
            named = change(run)
            argv = {
                "resume": ["resume", str(run), "--iterations", "1", "--renderer", "gl", "--device", "cpu"],
                "export": ["export", str(run)],
                "export-edits": ["export", str(run), "--edits", str(run / "edits.json")],
                "eval": ["eval", str(run), "--views", str(t / "nothing")],
                "bench": ["bench", "materials", "--run", str(run)],
            }[command]
            return argv, named

        return build

    record = lambda r: r / "run.json"  # noqa: E731
    yield "run-json-missing", broken(lambda r: record(r).unlink() or record(r))
    yield "run-json-truncated", broken(lambda r: truncate(record(r)) or record(r))
    yield "run-json-top-level-list", broken(lambda r: put(record(r), "[1, 2]"))
    yield "run-json-source-not-a-string", broken(
        lambda r: edit_json(record(r), lambda d: d["dataset"].update(source=7)) or record(r))
    yield "run-json-image-scale-nan", broken(
        lambda r: edit_json(record(r), lambda d: d.update(image_scale=float("nan"))) or record(r))
    yield "run-json-holdout-wrong-type", broken(
        lambda r: edit_json(record(r), lambda d: d.update(holdout=[1, 2])) or record(r), "eval")

    yield "run-json-source-a-list-for-bench", broken(
        lambda r: edit_json(record(r), lambda d: d["dataset"].update(source=["a"])) or record(r), "bench")

    state = lambda r: r / "checkpoint" / "state.safetensors"  # noqa: E731
    yield "checkpoint-empty", broken(lambda r: put(state(r), b""))
    yield "checkpoint-truncated", broken(lambda r: truncate(state(r)) or state(r))
    yield "checkpoint-pickle", broken(lambda r: _pickle_file(state(r)) or state(r))
    yield "checkpoint-missing-faces", broken(lambda r: edit_checkpoint(state(r), lambda t: t.pop("mesh/faces")) or state(r))
    yield "checkpoint-offsets-wrong-shape", broken(
        lambda r: edit_checkpoint(state(r), lambda t: t.update(offsets=torch.zeros(5, 3))) or state(r))
    yield "checkpoint-vertices-nan", broken(
        lambda r: edit_checkpoint(state(r), lambda t: t["mesh/vertices"].__setitem__((0, 0), float("nan"))) or state(r))
    yield "checkpoint-face-index-out-of-range", broken(
        lambda r: edit_checkpoint(state(r), lambda t: t["mesh/faces"].__setitem__((0, 0), 10**6)) or state(r))
    yield "checkpoint-shader-wrong-shape", broken(
        lambda r: edit_checkpoint(state(r), lambda t: t.update({"shader/c.0.bias": torch.zeros(3)})) or state(r))
    yield "checkpoint-adam-state-wrong-shape", broken(
        lambda r: edit_checkpoint(state(r), lambda t: t.update({"vertex_optimizer/0/exp_avg": torch.zeros(2, 3)})) or state(r))
    yield "checkpoint-iteration-a-string", broken(
        lambda r: edit_checkpoint(state(r), record=lambda m: m.update(iteration="ten")) or state(r))
    yield "checkpoint-history-missing", broken(lambda r: edit_checkpoint(state(r), record=lambda m: m.pop("history")) or state(r))
    yield "checkpoint-huge-hidden-layers", broken(
        lambda r: edit_checkpoint(state(r), record=lambda m: m["config"]["shader"].update(hidden_h=10**7)) or state(r))

    shader_json = lambda r: r / "shader.json"  # noqa: E731
    weights = lambda r: r / "shader.safetensors"  # noqa: E731
    yield "shader-json-no-checksum", broken(
        lambda r: edit_json(shader_json(r), lambda d: d["weights"].pop("sha256")) or shader_json(r), "export")
    yield "shader-json-huge-layers", broken(
        lambda r: edit_json(shader_json(r), lambda d: d["config"].update(hidden_c=10**8)) or shader_json(r), "export")
    yield "shader-json-scale-nan", broken(
        lambda r: edit_json(shader_json(r), lambda d: d["normalization"].update(scale=float("nan"))) or shader_json(r), "export")
    yield "shader-weights-truncated", broken(lambda r: truncate(weights(r)) or weights(r), "export")
    yield "shader-weights-pickle", broken(lambda r: _pickle_file(weights(r)) or weights(r), "export")
    yield "run-mesh-empty", broken(lambda r: put(r / "mesh.ply", b""), "export")

    edits = lambda r: r / "edits.json"  # noqa: E731
    yield "edits-truncated", broken(lambda r: put(edits(r), '{"format": '), "export-edits")
    yield "edits-wrong-types", broken(lambda r: put(edits(r), '{"format": 1, "edits": "all"}'), "export-edits")
    yield "edits-a-pickle", broken(lambda r: put(edits(r), pickle.dumps({"edits": []})), "export-edits")
    materials = lambda r: r / "materials.json"  # noqa: E731
    yield "materials-json-truncated", broken(
        lambda r: put(edits(r), "{}") and truncate(materials(r)) or materials(r), "export-edits")
    yield "materials-tensors-garbage", broken(
        lambda r: put(edits(r), "{}") and put(r / "materials.safetensors", b"\xff" * 64),
        "export-edits")


CASES = dict([*_dataset_cases(), *_mesh_cases(), *_run_folder_cases()])


def _tree(root: Path) -> dict[str, str]:
    """Every path under `root` with a digest of its content (links by target): what a case may not change."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = "-> " + str(path.readlink())
        elif path.is_file():
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[key] = "dir"
    return out


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", sorted(CASES))
def test_refused_with_one_line_naming_the_file(name, run_folder, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_folder, run)
    argv, named = CASES[name](tmp_path, run)
    before = _tree(tmp_path)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("WARNING", "INFO"))]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("reconstruct: error:"), err
    assert str(named) in lines[0] or named.name in lines[0], (named, lines[0])
    assert "Traceback" not in err
    assert _tree(tmp_path) == before, "a refused input wrote or changed files"


def test_an_unknown_folder_names_each_formats_file_in_one_short_line(tmp_path, capsys) -> None:
    from recon.data.load import FORMATS

    folder = tmp_path / "holiday-photos"
    folder.mkdir()
    assert main(["info", str(folder)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("WARNING", "INFO"))]
    assert len(lines) == 1 and lines[0].startswith(f"reconstruct: error: {folder}: not a dataset of a known format")
    what = lines[0].split(str(folder), 1)[1]
    assert len(what) < 200 and all(fmt.KEY_FILE in what for fmt in FORMATS.values())
    assert 'see "Dataset formats" in the README' in what
