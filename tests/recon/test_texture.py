"""Texture-atlas baking and textured export, read back by trimesh, pygltflib and the Khronos validator."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from recon.export import bake_vertex_colors, export_baked, export_mesh
from recon.shader import NeuralShader, ShaderConfig
from recon.texture import bake_texture, dilate, texel_fragments, uv_atlas
from render.backends.gl import GLRasterizer

pytestmark = pytest.mark.gl

VALIDATOR = Path(__file__).resolve().parents[2] / ".tools" / "node_modules" / "gltf-validator"


@pytest.fixture(scope="module")
def blob() -> trimesh.Trimesh:
    """A lumpy, off-centre body in world units, so charts and colours are not symmetric."""
    m = trimesh.creation.icosphere(subdivisions=3, radius=0.8)
    v = m.vertices * (1 + 0.15 * np.sin(3 * m.vertices[:, :1]) * np.cos(2 * m.vertices[:, 1:2]))
    return trimesh.Trimesh(v + [2.0, -1.0, 0.5], m.faces, process=False)


@pytest.fixture(scope="module")
def colourful_shader() -> tuple[NeuralShader, tuple[np.ndarray, float]]:
    """A shader whose colour varies over the surface (a fresh one is almost uniform grey)."""
    torch.manual_seed(3)
    shader = NeuralShader(ShaderConfig(pe_octaves=1, hidden_h=32, layers_h=2, features=8, hidden_c=16, layers_c=1))
    with torch.no_grad():
        for p in shader.parameters():
            p.normal_(0.0, 0.5)
    return shader, (np.array([2.0, -1.0, 0.5]), 1.0)


def test_the_atlas_keeps_every_face_and_its_orientation(blob) -> None:
    source, faces, uv, (w, h) = uv_atlas(blob.vertices, blob.faces, 256)
    assert np.array_equal(source[faces], blob.faces)
    assert w == h and w & (w - 1) == 0 and 256 <= w <= 512
    assert uv.min() >= 0 and uv.max() <= 1


def test_each_texel_lands_on_its_uv_point(blob) -> None:
    """Rasterizing in UV space: a filled texel's barycentrics rebuild its own centre in UV."""
    _, faces, uv, (w, h) = uv_atlas(blob.vertices, blob.faces, 128)
    rasterizer = GLRasterizer()
    try:
        face_id, bary = texel_fragments(uv, faces, w, h, rasterizer)
    finally:
        rasterizer.release()
    filled = face_id >= 0
    assert 0.1 < float(filled.float().mean()) < 0.95
    corners = torch.from_numpy(uv[faces])[face_id[filled]]  # (T, 3, 2)
    rebuilt = (corners * bary[filled][..., None]).sum(1)
    rows, cols = torch.nonzero(filled, as_tuple=True)
    centre = torch.stack([(cols + 0.5) / w, (rows + 0.5) / h], 1)
    assert (rebuilt - centre).abs().max() < 1e-4
    assert (bary[filled] >= -1e-3).all()


def test_dilation_grows_colour_ring_by_ring() -> None:
    image = torch.zeros(9, 9, 3)
    filled = torch.zeros(9, 9, dtype=torch.bool)
    image[4, 4] = torch.tensor([0.2, 0.4, 0.6])
    filled[4, 4] = True
    out = dilate(image, filled, texels=2)
    grown = out.abs().sum(-1) > 0
    assert grown[2:7, 2:7].all() and grown.sum() == 25
    assert torch.allclose(out[2:7, 2:7], torch.tensor([0.2, 0.4, 0.6]).expand(5, 5, 3))


def _close(got: np.ndarray, expected: np.ndarray) -> None:
    """Texel colours at the vertices against the vertex colours. A texel centre sits up to ~0.7
    texel from its vertex and the shader's colour varies with the interpolated normal there, so
    single vertices can differ by a few percent; a wrong convention (a flipped v, another chart)
    moves the median by the colours' spread (~0.1–0.3)."""
    err = np.abs(got - expected).max(1)
    assert np.median(err) < 2 / 255 and np.quantile(err, 0.9) < 10 / 255, (np.median(err), np.quantile(err, 0.9))


def _nearest_texel(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Colour of the texel under each UV (v down the image, as glTF stores it)."""
    h, w = image.shape[:2]
    cols = np.clip((uv[:, 0] * w).astype(int), 0, w - 1)
    rows = np.clip((uv[:, 1] * h).astype(int), 0, h - 1)
    return image[rows, cols, :3]


@pytest.mark.parametrize("fmt", ["glb", "obj"])
def test_textured_export_shows_the_shaders_colours_in_trimesh(tmp_path: Path, blob, colourful_shader, fmt: str) -> None:
    shader, norm = colourful_shader
    written = export_baked(shader, blob.vertices, blob.faces, blob.vertex_normals, norm, tmp_path / f"m.{fmt}",
                           texture_size=256)  # fmt: skip
    assert written[0] == tmp_path / f"m.{fmt}" and all(p.exists() for p in written)
    if fmt == "obj":
        assert {p.suffix for p in written} == {".obj", ".mtl", ".png"}
    expected = bake_vertex_colors(shader, blob.vertices, blob.vertex_normals, norm)
    assert expected.std(0).min() > 0.05  # colours that differ over the surface
    loaded = trimesh.load(written[0], process=False)
    (mesh,) = loaded.geometry.values() if isinstance(loaded, trimesh.Scene) else (loaded,)
    assert isinstance(mesh.visual, trimesh.visual.TextureVisuals)
    material = mesh.visual.material
    assert getattr(material, "baseColorTexture", None) is not None or getattr(material, "image", None) is not None
    colours = mesh.visual.to_color().vertex_colors[:, :3] / 255.0
    source = np.linalg.norm(mesh.vertices[:, None] - blob.vertices[None], axis=-1).argmin(1)
    _close(colours, expected[source])
    assert len(mesh.faces) == len(blob.faces)
    assert np.allclose(mesh.vertices, blob.vertices[source], atol=1e-5)


def test_textured_glb_reads_the_same_in_pygltflib(tmp_path: Path, blob, colourful_shader) -> None:
    """A second, independent reader: the embedded PNG sampled at TEXCOORD_0, an unlit material."""
    pygltflib = pytest.importorskip("pygltflib", reason="pygltflib is a test extra: pip install -e '.[test]'")
    from PIL import Image

    shader, norm = colourful_shader
    path = export_baked(shader, blob.vertices, blob.faces, blob.vertex_normals, norm, tmp_path / "m.glb", texture_size=256)[0]
    gltf = pygltflib.GLTF2().load(str(path))
    data = gltf.binary_blob()

    def accessor(index: int, components: int) -> np.ndarray:
        acc = gltf.accessors[index]
        view = gltf.bufferViews[acc.bufferView]
        start = (view.byteOffset or 0) + (acc.byteOffset or 0)
        dtype = {5126: np.float32, 5125: np.uint32, 5123: np.uint16}[acc.componentType]
        return np.frombuffer(data, dtype, acc.count * components, start).reshape(acc.count, components)

    primitive = gltf.meshes[0].primitives[0]
    positions = accessor(primitive.attributes.POSITION, 3)
    uv = accessor(primitive.attributes.TEXCOORD_0, 2)
    material = gltf.materials[primitive.material]
    assert "KHR_materials_unlit" in material.extensions and material.pbrMetallicRoughness.metallicFactor == 0
    image_view = gltf.bufferViews[gltf.images[material.pbrMetallicRoughness.baseColorTexture.index].bufferView]
    png = data[(image_view.byteOffset or 0) : (image_view.byteOffset or 0) + image_view.byteLength]
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")) / 255.0
    expected = bake_vertex_colors(shader, blob.vertices, blob.vertex_normals, norm)
    source = np.linalg.norm(positions[:, None] - blob.vertices[None], axis=-1).argmin(1)
    _close(_nearest_texel(image, uv), expected[source])
    flipped = np.column_stack([uv[:, 0], 1 - uv[:, 1]])  # the test can tell a wrong convention
    assert np.median(np.abs(_nearest_texel(image, flipped) - expected[source]).max(1)) > 0.05


def _validator_skip_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (the Khronos glTF validator runs on node)"
    if not VALIDATOR.is_dir():
        return f"gltf-validator not found at {VALIDATOR} (bash scripts/setup.sh --test installs it with npm)"
    return None


@pytest.mark.skipif(_validator_skip_reason() is not None, reason=_validator_skip_reason() or "")
def test_the_khronos_validator_finds_nothing_in_our_glbs(tmp_path: Path, blob, colourful_shader) -> None:
    shader, norm = colourful_shader
    textured = export_baked(shader, blob.vertices, blob.faces, blob.vertex_normals, norm, tmp_path / "t.glb", texture_size=128)[0]
    colours = bake_vertex_colors(shader, blob.vertices, blob.vertex_normals, norm)
    coloured = export_mesh(blob.vertices, blob.faces, tmp_path / "c.glb", colors=colours)
    script = (
        "const v = require('gltf-validator'); const fs = require('fs');"
        "v.validateBytes(new Uint8Array(fs.readFileSync(process.argv[1])))"
        ".then(r => console.log(JSON.stringify(r.issues))).catch(e => { console.error(e); process.exit(1); });"
    )
    for path in (textured, coloured):
        result = subprocess.run(
            ["node", "-e", script, str(path)], capture_output=True, text=True, timeout=120,
            env={"NODE_PATH": str(VALIDATOR.parent), "PATH": "/usr/bin:/bin:/usr/local/bin"},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        issues = json.loads(result.stdout)
        assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]
        assert issues["numHints"] == 0, issues["messages"]


def test_texture_bake_refuses_a_tiny_atlas(blob, colourful_shader) -> None:
    shader, norm = colourful_shader
    with pytest.raises(ValueError, match="at least 16"):
        bake_texture(shader, blob.vertices, blob.faces, blob.vertex_normals, norm, size=8)
