"""GLRasterizer against independent numpy geometry: coverage, perspective-correct barycentrics,
depth, culling orientation, depth peeling, image orientation, resource reuse and threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import trimesh

from render import Camera, Fragments, rasterize
from render.backends.gl import GLRasterizer

gl = pytest.mark.gl

# Vertices sit on llvmpipe's 1/256-pixel snapping grid, so GL rasterizes exactly this triangle and
# the edge-function reference needs no snapping tolerance.
TRI_UV = np.array([[12.25, 9.125], [40.0625, 112.75], [150.5, 40.375]])  # counter-clockwise on screen
TRI_Z = np.array([1.5, 3.0, 6.0])  # strongly slanted: perspective-incorrect barys would be far off


def _edge_distances(uv: np.ndarray, height: int, width: int) -> np.ndarray:
    """(3, H, W) signed pixel distances of pixel centres to the triangle's edges, > 0 inside."""
    v, u = np.mgrid[0:height, 0:width] + 0.5
    (ax, ay), (bx, by) = uv[1] - uv[0], uv[2] - uv[0]
    area = ax * by - ay * bx
    dists = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        edge = uv[b] - uv[a]
        cross = edge[0] * (v - uv[a, 1]) - edge[1] * (u - uv[a, 0])
        dists.append(np.sign(area) * cross / np.hypot(*edge))
    return np.stack(dists)


def _slanted_triangle(tools) -> tuple[Camera, np.ndarray, torch.Tensor]:
    cam = tools.camera()
    points = tools.unproject(cam, TRI_UV, TRI_Z)
    return cam, points, tools.clip(cam, points)


@gl
def test_single_triangle_coverage_barycentrics_depth(gl_rasterizer: GLRasterizer, tools) -> None:
    cam, points, pos = _slanted_triangle(tools)
    frags = rasterize(gl_rasterizer, pos, torch.tensor([[0, 1, 2]]), (cam.height, cam.width))
    assert frags.tri_id.shape == (1, cam.height, cam.width) and frags.tri_id.dtype == torch.int64
    assert frags.bary.shape == (1, cam.height, cam.width, 3) and frags.bary.dtype == torch.float32
    assert frags.depth.shape == (1, cam.height, cam.width) and frags.depth.dtype == torch.float32

    # Coverage: exactly the pixel centres inside the projected triangle.
    dist = _edge_distances(TRI_UV, cam.height, cam.width)
    inside = (dist > 1e-4).all(axis=0)
    outside = (dist < -1e-4).any(axis=0)
    covered = (frags.tri_id[0] == 0).numpy()
    assert inside.sum() > 3000
    assert np.array_equal(covered[inside | outside], inside[inside | outside])
    assert (frags.tri_id[0][~frags.covered[0]] == -1).all()

    # Perspective-correct barycentrics: the 3-D point they interpolate projects to the pixel centre.
    rows, cols = np.nonzero(covered)
    bary = frags.bary[0].numpy()[covered].astype(np.float64)
    assert np.allclose(bary.sum(axis=1), 1.0, atol=1e-6)
    assert (bary > -1e-6).all()
    world = bary @ points
    pix, z = cam.project(world)
    assert np.abs(pix - np.c_[cols + 0.5, rows + 0.5]).max() < 1e-3

    # Depth is the camera z of that point; empty pixels: +inf depth, zero barycentrics.
    assert np.allclose(frags.depth[0].numpy()[covered], z, rtol=1e-5, atol=0)
    assert torch.isinf(frags.depth[0][~frags.covered[0]]).all()
    assert (frags.bary[0][~frags.covered[0]] == 0).all()


@gl
def test_back_faces_are_culled(gl_rasterizer: GLRasterizer, tools) -> None:
    cam, points, pos = _slanted_triangle(tools)
    # Independent check of which winding faces the camera: the 3-D normal points at the camera.
    normal = np.cross(points[1] - points[0], points[2] - points[0])
    assert normal @ (cam.center - points.mean(axis=0)) > 0

    front = rasterize(gl_rasterizer, pos, torch.tensor([[0, 1, 2]]), (cam.height, cam.width))
    back = rasterize(gl_rasterizer, pos, torch.tensor([[0, 2, 1]]), (cam.height, cam.width))
    assert front.covered.sum() > 3000
    assert not back.covered.any()


def _closed_mesh_scene(tools, mesh: trimesh.Trimesh) -> tuple[Camera, torch.Tensor, torch.Tensor]:
    assert mesh.is_winding_consistent and mesh.volume > 0  # outward, counter-clockwise faces
    cam = Camera.look_at(np.array([0.4, -0.5, -2.5]), np.zeros(3), np.array([0.0, -1.0, 0.0]), 45.0, 96, 80)
    return cam, tools.clip(cam, mesh.vertices), torch.tensor(mesh.faces)


@gl
@pytest.mark.parametrize(
    "mesh", [trimesh.creation.icosphere(3), trimesh.creation.box((1.0, 0.8, 1.2))], ids=["icosphere", "box"]
)
def test_convex_closed_mesh_has_one_layer(gl_rasterizer: GLRasterizer, tools, mesh: trimesh.Trimesh) -> None:
    cam, pos, tri = _closed_mesh_scene(tools, mesh)
    frags = rasterize(gl_rasterizer, pos, tri, (cam.height, cam.width), layers=2)
    assert frags.covered[0].sum() > 500
    assert not frags.covered[1].any()  # back faces culled: a convex body shows one surface
    # Layer 0 is the front surface: every sampled face faces the camera.
    faces = frags.tri_id[0][frags.covered[0]].numpy()
    centroids = mesh.triangles_center[faces]
    assert ((mesh.face_normals[faces] * (cam.center - centroids)).sum(axis=1) > 0).all()


@gl
def test_depth_peeling_two_spheres(gl_rasterizer: GLRasterizer, tools) -> None:
    """A small sphere in front of a big one: layer 1 holds the big sphere's front where they overlap."""
    width = height = 96
    f = 110.0
    cam = Camera(np.array([[f, 0, 48.0], [0, f, 48.0], [0, 0, 1]]), np.eye(3), np.zeros(3), width, height)
    centres, radii = np.array([[-0.1, 0.0, 3.0], [0.4, 0.1, 6.0]]), np.array([0.5, 1.5])
    spheres = [trimesh.creation.icosphere(4, radius=r).apply_translation(c) for c, r in zip(centres, radii)]
    n_front = len(spheres[0].faces)
    mesh = trimesh.util.concatenate(spheres)
    pos, tri = tools.clip(cam, mesh.vertices), torch.tensor(mesh.faces)
    frags = rasterize(gl_rasterizer, pos, tri, (height, width), layers=3)

    # Analytic ray/sphere tests per pixel centre; skip pixels within 1.5 px of a silhouette.
    v, u = np.mgrid[0:height, 0:width] + 0.5
    rays = np.stack([(u - 48.0) / f, (v - 48.0) / f, np.ones_like(u)], axis=-1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    hit, depth, certain = [], [], np.ones((height, width), bool)
    for c, r in zip(centres, radii):
        along = rays @ c
        miss = np.sqrt(np.maximum(c @ c - along**2, 0))  # distance of the ray to the centre
        hit.append(miss < r)
        certain &= np.abs(miss - r) > 1.5 * c[2] / f
        t = along - np.sqrt(np.maximum(r**2 - miss**2, 0))
        depth.append(t * rays[..., 2])
    ids = frags.tri_id.numpy()
    in_front = (ids >= 0) & (ids < n_front)
    in_back = ids >= n_front

    both = hit[0] & hit[1] & certain
    only_back = ~hit[0] & hit[1] & certain
    assert both.sum() > 200 and only_back.sum() > 200
    assert np.array_equal(in_front[0][certain], hit[0][certain])
    assert in_back[1][both].all() and in_back[0][only_back].all()
    assert not (ids[1] >= 0)[only_back].any()
    assert not frags.covered[2].any()
    assert np.allclose(frags.depth[0].numpy()[both], depth[0][both], rtol=2e-3)
    assert np.allclose(frags.depth[1].numpy()[both], depth[1][both], rtol=2e-3)
    two = frags.covered[1]
    assert (frags.depth[1][two] > frags.depth[0][two]).all()
    assert frags.covered[0][two].all()  # a deeper layer only where the one before has a sample


@gl
def test_row_zero_is_the_top_of_the_image(gl_rasterizer: GLRasterizer) -> None:
    cam = Camera(np.array([[80.0, 0, 32], [0, 80.0, 24], [0, 0, 1]]), np.eye(3), np.zeros(3), 64, 48)
    # Above the optical axis (camera y < 0) and to the right (x > 0); CCW outward toward the camera.
    points = np.array([[0.2, -0.5, 2.0], [0.3, -0.2, 2.0], [0.5, -0.4, 2.0]])
    normal = np.cross(points[1] - points[0], points[2] - points[0])
    tri = torch.tensor([[0, 1, 2]] if normal @ -points.mean(axis=0) > 0 else [[0, 2, 1]])
    near, far = 1.0, 3.0
    pos = torch.tensor(np.c_[points, np.ones(3)] @ cam.clip_matrix(near, far).T, dtype=torch.float32)
    frags = rasterize(gl_rasterizer, pos, tri, (48, 64))
    rows, cols = torch.nonzero(frags.covered[0], as_tuple=True)
    assert len(rows) > 50
    assert rows.max() < 24 and cols.min() >= 32
    uv, _ = cam.project(points)
    assert rows.min() >= np.floor(uv[:, 1].min()) and rows.max() <= np.ceil(uv[:, 1].max())


def _same(a: Fragments, b: Fragments) -> bool:
    return torch.equal(a.tri_id, b.tri_id) and torch.equal(a.bary, b.bary) and torch.equal(a.depth, b.depth)


@gl
def test_repeated_calls_and_resolution_changes_reuse_resources(tools) -> None:
    mesh = trimesh.creation.icosphere(3)
    cam, pos, tri = _closed_mesh_scene(tools, mesh)
    with GLRasterizer(max_cached_sizes=2) as r:
        first = r.rasterize(pos, tri, (cam.height, cam.width), layers=2)
        targets = r._targets[(cam.height, cam.width)]
        tri_buffer = r._tri_buf
        assert _same(first, r.rasterize(pos, tri, (cam.height, cam.width), layers=2))
        with pytest.raises(ValueError, match="indices"):  # cached faces, fewer vertices
            r.rasterize(pos[:10], tri, (cam.height, cam.width))
        small = r.rasterize(pos, tri, (40, 48))
        assert small.tri_id.shape == (1, 40, 48) and small.covered.any()
        again = r.rasterize(pos, tri, (cam.height, cam.width), layers=2)
        assert _same(first, again)
        assert r._targets[(cam.height, cam.width)] is targets and r._tri_buf is tri_buffer
        # A third size evicts the least recently used one; results don't depend on the cache.
        r.rasterize(pos, tri, (30, 30))
        assert (40, 48) not in r._targets
        assert _same(small, r.rasterize(pos, tri, (40, 48)))
        # Faces edited in place are uploaded again (the cache keys on tensor identity and version).
        # Flipped, the sphere shows the inside of its far half: none of the faces seen before.
        tri[:, [1, 2]] = tri[:, [2, 1]].clone()
        flipped = r.rasterize(pos, tri, (cam.height, cam.width))
        seen_before = first.tri_id[0][first.covered[0]].unique()
        seen_now = flipped.tri_id[0][flipped.covered[0]].unique()
        assert len(seen_now) > 50 and not torch.isin(seen_now, seen_before).any()


@gl
def test_large_meshes_are_drawn_in_chunks(tools) -> None:
    """Above the storage-block limit faces go in several draws; ids must continue across them."""
    mesh = trimesh.creation.icosphere(4)  # 5120 faces, 2562 vertices
    cam, pos, tri = _closed_mesh_scene(tools, mesh)
    with GLRasterizer() as whole, GLRasterizer() as chunked:
        expected = whole.rasterize(pos, tri, (cam.height, cam.width), layers=2)
        chunked.rasterize(pos, tri[:1], (cam.height, cam.width))  # creates the context
        chunked._max_block_bytes = 50_000  # 4096 faces a draw, as if the GL limit were that small
        assert _same(expected, chunked.rasterize(pos, tri, (cam.height, cam.width), layers=2))
        assert expected.tri_id.max() >= 4096  # faces of the second draw were seen
        chunked._max_block_bytes = 40_000
        with pytest.raises(ValueError, match="vertices exceed"):
            chunked.rasterize(pos, tri, (cam.height, cam.width))


@gl
def test_the_faces_kept_by_the_pre_cull_are_drawn_in_chunks_too(tools) -> None:
    """A flat grid facing the camera keeps nearly every face, more than one draw holds."""
    cam = Camera(np.array([[256.0, 0, 128.0], [0, 256.0, 128.0], [0, 0, 1]]), np.eye(3), np.zeros(3), 256, 256)
    x, y = np.meshgrid(np.linspace(-1.2, 1.2, 65), np.linspace(-1.2, 1.2, 65))
    i, j = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    a = (i * 65 + j).ravel()
    grid = trimesh.Trimesh(np.c_[x.ravel(), y.ravel(), np.full(x.size, 3.0)], np.c_[a, a + 1, a + 66, a, a + 66, a + 65].reshape(-1, 3), process=False)
    if (grid.face_normals[:, 2] > 0).any():  # make the faces point at the camera (−z)
        grid.invert()
    pos, tri = tools.clip(cam, grid.vertices), torch.tensor(grid.faces)
    with GLRasterizer(shader_cull=True) as whole, GLRasterizer(shader_cull=True) as chunked:
        expected = whole.rasterize(pos, tri, (cam.height, cam.width), layers=2)
        chunked.rasterize(pos, tri[:1], (cam.height, cam.width))  # creates the context
        chunked._max_block_bytes = 70_000  # 5120 faces a draw; the grid's 4225 vertices still fit
        got = chunked.rasterize(pos, tri, (cam.height, cam.width), layers=2)
        assert chunked.drawn_faces > 5120
        assert _same(expected, got)
        assert expected.covered[0].float().mean() > 0.6


def _ground_and_spheres() -> tuple[Camera, trimesh.Trimesh]:
    """Spheres above a ground grid that runs behind the camera (near-plane clipping, off-screen parts)."""
    cam = Camera(np.array([[70.0, 0, 40.5], [0, 72.0, 30.25], [0, 0, 1]]), np.eye(3), np.zeros(3), 80, 60)
    x, z = np.meshgrid(np.linspace(-6, 6, 25), np.linspace(-3, 12, 31))
    grid = np.c_[x.ravel(), np.full(x.size, 0.8), z.ravel()]
    i, j = np.meshgrid(np.arange(30), np.arange(24), indexing="ij")
    a = (i * 25 + j).ravel()
    quads = np.c_[a, a + 1, a + 26, a, a + 26, a + 25].reshape(-1, 3)
    ground = trimesh.Trimesh(grid, quads, process=False)
    if (ground.face_normals[:, 1] > 0).any():  # make the faces point up (−y), at the camera
        ground.invert()
    spheres = [trimesh.creation.icosphere(3, radius=r).apply_translation(c) for c, r in (([0, 0, 3], 0.6), ([0.8, 0.2, 5], 1.0))]
    return cam, trimesh.util.concatenate([ground, *spheres])


@gl
def test_shader_cull_changes_nothing(tools) -> None:
    """The compute-shader pre-cull (software GL speed-up) must drop nothing GL would draw.

    The kept faces go through the same vertex and fragment shaders, so every output is identical.
    """
    scenes = [_ground_and_spheres(), (tools.camera(), trimesh.creation.icosphere(5).apply_scale(0.5))]
    with GLRasterizer(shader_cull=True) as culled, GLRasterizer(shader_cull=False) as plain:
        for cam, mesh in scenes:
            pos, tri = tools.clip(cam, mesh.vertices), torch.tensor(mesh.faces)
            expected = plain.rasterize(pos, tri, (cam.height, cam.width), layers=3)
            got = culled.rasterize(pos, tri, (cam.height, cam.width), layers=3)
            assert expected.covered[0].sum() > 1000
            assert torch.equal(got.tri_id, expected.tri_id)
            assert torch.equal(got.bary, expected.bary)
            assert torch.equal(got.depth, expected.depth)
            assert culled.drawn_faces < plain.drawn_faces == len(mesh.faces)
        assert culled.drawn_faces < len(mesh.faces) // 2  # the sphere's back half at least


@gl
def test_empty_mesh_and_release(tools) -> None:
    r = GLRasterizer()
    frags = r.rasterize(torch.zeros((0, 4)), torch.zeros((0, 3), dtype=torch.int64), (20, 30), layers=2)
    assert frags.tri_id.shape == (2, 20, 30) and (frags.tri_id == -1).all()
    assert torch.isinf(frags.depth).all() and (frags.bary == 0).all()
    _, _, pos = _slanted_triangle(tools)
    assert r.rasterize(pos, torch.tensor([[0, 1, 2]]), (120, 160)).covered.any()
    assert r.drawn_faces == 1
    r.rasterize(torch.zeros((0, 4)), torch.zeros((0, 3), dtype=torch.int64), (20, 30))
    assert r.drawn_faces == 0  # the last call's count, not a stale one
    r.release()
    r.release()  # idempotent
    with pytest.raises(RuntimeError, match="released"):
        r.rasterize(pos, torch.tensor([[0, 1, 2]]), (120, 160))


@gl
def test_worker_thread_gets_its_own_context(gl_rasterizer: GLRasterizer, tools) -> None:
    cam, _, pos = _slanted_triangle(tools)
    tri = torch.tensor([[0, 1, 2]])
    expected = gl_rasterizer.rasterize(pos, tri, (cam.height, cam.width))
    results: dict[str, object] = {}

    def work() -> None:
        try:
            with GLRasterizer() as own:
                results["frags"] = own.rasterize(pos, tri, (cam.height, cam.width))
            gl_rasterizer.rasterize(pos, tri, (cam.height, cam.width))
        except Exception as exc:  # noqa: BLE001 - reported to the main thread below
            results["error"] = exc

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=60)
    assert _same(results["frags"], expected)  # type: ignore[arg-type]
    assert isinstance(results["error"], RuntimeError) and "thread" in str(results["error"])


@pytest.mark.parametrize(
    ("pos", "tri", "resolution", "layers", "message"),
    [
        (torch.zeros(3, 3), torch.tensor([[0, 1, 2]]), (8, 8), 1, "shape"),
        (torch.zeros(3, 4, dtype=torch.float64), torch.tensor([[0, 1, 2]]), (8, 8), 1, "float32"),
        (torch.zeros(3, 4), torch.tensor([[0, 1]]), (8, 8), 1, "shape"),
        (torch.zeros(3, 4), torch.tensor([[0.0, 1.0, 2.0]]), (8, 8), 1, "int64"),
        (torch.zeros(3, 4), torch.tensor([[0, 1, 3]]), (8, 8), 1, "indices"),
        (torch.zeros(3, 4), torch.tensor([[0, 1, -1]]), (8, 8), 1, "indices"),
        (torch.tensor([[0.0, 0, 0, 1]] * 2 + [[float("nan"), 0, 0, 1]]), torch.tensor([[0, 1, 2]]), (8, 8), 1, "NaN"),
        (torch.zeros(3, 4), torch.tensor([[0, 1, 2]]), (8, 0), 1, "positive"),
        (torch.zeros(3, 4), torch.tensor([[0, 1, 2]]), (8,), 1, "resolution"),
        (torch.zeros(3, 4), torch.tensor([[0, 1, 2]]), (8, 8), 0, "layers"),
    ],
)
def test_invalid_inputs_raise_value_error(pos, tri, resolution, layers, message) -> None:
    """Checked before any GL work, so this runs without a context."""
    with pytest.raises(ValueError, match=message):
        rasterize(GLRasterizer(), pos, tri, resolution, layers)


def test_rasterize_rejects_non_rasterizers() -> None:
    with pytest.raises(ValueError, match="rasterizer"):
        rasterize(object(), torch.zeros(3, 4), torch.tensor([[0, 1, 2]]), (8, 8))  # type: ignore[arg-type]


def test_missing_egl_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import moderngl

    def no_egl(**kwargs):
        raise OSError("libEGL.so.1: cannot open shared object file")

    monkeypatch.setattr(moderngl, "create_standalone_context", no_egl)
    with pytest.raises(RuntimeError, match="libegl1.*libgl1-mesa-dri"):
        GLRasterizer().rasterize(torch.zeros(3, 4), torch.tensor([[0, 1, 2]]), (8, 8))


# Two faces of a real reconstruction (the machined part's demo, 256²), clip coordinates exact:
# face 0 is a sliver of 6.5e-6 px² whose corners lie just off pixel (167, 100)'s centre; face 1 is
# the surface that really covers that centre (float32 values, written exactly). After GL's
# sub-pixel snapping llvmpipe drew the sliver there with barycentrics near (-497, 559, -61), a
# point 22 px away and 1.9 units nearer the camera, so it hid face 1 and its splat weights
# underflowed to 0/0.
_SLIVER_CLIP = [
    [-0.6948645114898682, 1.0364360809326172, -2.13679838180542, 3.3636882305145264],
    [-0.700996458530426, 1.0356477499008179, -2.1548080444335938, 3.359872341156006],
    [-0.7528791427612305, 1.0386401414871216, -2.1533923149108887, 3.3601722717285156],
    [-0.7033060789108276, 1.0333176851272583, -2.170294761657715, 3.35659122467041],
    [-0.7522674202919006, 1.0385751724243164, -2.1644139289855957, 3.357837200164795],
]


@gl
@pytest.mark.parametrize("shader_cull", [True, False])
def test_a_fragment_off_its_snapped_sliver_is_dropped_and_barycentrics_stay_on_their_face(shader_cull: bool) -> None:
    pos = torch.tensor(_SLIVER_CLIP, dtype=torch.float32)
    tri = torch.tensor([[0, 1, 2], [3, 4, 1]])
    with GLRasterizer(shader_cull=shader_cull) as rasterizer:
        frags = rasterizer.rasterize(pos, tri, (256, 256), layers=2)
    assert frags.tri_id[0, 167, 100] == 1
    assert frags.depth[0, 167, 100] == pytest.approx(3.3585, abs=1e-3)
    bary = frags.bary[frags.covered]
    assert len(bary) > 0
    assert (bary >= 0).all() and (bary <= 1).all()
    assert torch.allclose(bary.sum(dim=1), torch.ones(len(bary)), atol=1e-6)
