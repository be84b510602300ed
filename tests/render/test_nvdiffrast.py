"""The nvdiffrast backend: back-face test and glue (everywhere), parity with GL (CUDA + nvdiffrast only)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import trimesh

from render import Camera, Fragments, make_rasterizer, rasterize
from render.renderer import Renderer
from render.backends.gl import GLRasterizer
from render.backends.nvdiffrast import NvdiffrastRasterizer, front_facing


def _nvdiffrast_skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "needs CUDA (torch.cuda.is_available() is False)"
    try:
        import nvdiffrast.torch  # noqa: F401
    except ImportError as exc:
        return f"needs nvdiffrast (pip install 'reconstruct[cuda]'): {exc}"
    try:  # the first context builds nvdiffrast's CUDA plugin; our backend's way of making it
        NvdiffrastRasterizer()
    except Exception as exc:  # any failure to build or load it means: skip, saying why
        return f"nvdiffrast imports but its CUDA context fails: {exc}"
    return None


_SKIP_REASON = _nvdiffrast_skip_reason()
needs_nvdiffrast = pytest.mark.skipif(_SKIP_REASON is not None, reason=_SKIP_REASON or "")


def test_front_facing_matches_3d_normals_even_across_the_camera_plane() -> None:
    """det[(x, y, w)_i] < 0 exactly when the face's normal points at the camera centre."""
    g = np.random.default_rng(0)
    cam = Camera(np.array([[90.0, 0.5, 40], [0, 95.0, 30], [0, 0, 1]]), np.eye(3), np.zeros(3), 80, 60)
    corners = g.normal(size=(500, 3, 3)) + np.array([0.0, 0.0, 1.0])  # many cross z = 0
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    facing = (normals * -corners[:, 0]).sum(axis=1) > 0
    clip = np.c_[corners.reshape(-1, 3), np.ones(1500)] @ cam.clip_matrix(0.1, 10.0).T
    kept = front_facing(torch.tensor(clip), torch.arange(1500).reshape(500, 3)).numpy()
    assert 0 < facing.sum() < 500 and (corners[:, :, 2] <= 0).any(axis=1).sum() > 50
    assert np.array_equal(np.sort(kept), np.nonzero(facing)[0])


class NvdiffrastRuleError(RuntimeError):
    """What nvdiffrast's C++ side raises (NVDR_CHECK) when an argument breaks its rules."""


def _nvdr_check(ok: bool, message: str) -> None:
    if not ok:
        raise NvdiffrastRuleError(message)


class _FakeNvdiffrast:
    """Stands in for `nvdiffrast.torch` on machines without CUDA.

    It enforces the argument rules of nvdiffrast's own sources (0.3.3 / 0.4.0: `torch/ops.py`,
    `torch_rasterize.cpp`, `torch_interpolate.cpp`, `torch_antialias.cpp`), with their messages,
    and emulates the documented outputs with the GL rasterizer: rast = (u, v, z/w, id + 1), u
    weighing vertex 0, row r at NDC y = (2r + 1)/H − 1, no culling of its own. The one relaxation:
    the context's device may be the CPU, which then stands in for the GPU. `bary_overshoot`
    scales (u, v) as nvdiffrast's CUDA rasterizer before 0.3.5 could leave them, u + v > 1
    (NVlabs/nvdiffrast#229).
    """

    def __init__(self, gl: GLRasterizer) -> None:
        self.gl = gl
        self.resolutions: list[tuple[int, int]] = []
        self.antialias_calls = 0
        self.bary_overshoot = 1.0

    def RasterizeCudaContext(self, device=None) -> SimpleNamespace:  # noqa: N802 - nvdiffrast's name
        return SimpleNamespace(device=torch.device(device or "cpu"), active_depth_peeler=None)

    @staticmethod
    def _same_device(ctx, *tensors: torch.Tensor) -> None:
        _nvdr_check(all(t.device == ctx.device for t in tensors), "Inputs must reside on the same GPU device")

    @staticmethod
    def _contiguous(*tensors: torch.Tensor) -> None:
        _nvdr_check(all(t.is_contiguous() for t in tensors), "Inputs must be contiguous tensors")

    @staticmethod
    def _aligned(tensor: torch.Tensor, what: str) -> None:
        _nvdr_check(tensor.data_ptr() % 16 == 0, f"{what} input tensor not aligned to float4")

    def _check_rasterize(self, ctx, pos, tri, resolution, ranges) -> int:
        """torch_rasterize.cpp's checks; returns the output minibatch size."""
        self._same_device(ctx, pos, tri)
        _nvdr_check(ranges.device.type == "cpu", "ranges must reside in CPU memory")
        self._contiguous(pos, tri, ranges)
        _nvdr_check(pos.dtype == torch.float32, "pos must be float32")
        _nvdr_check(tri.dtype == torch.int32 and ranges.dtype == torch.int32, "tri and ranges must be int32")
        if pos.ndim > 2:
            _nvdr_check(pos.ndim == 3 and pos.shape[0] > 0 and pos.shape[1] > 0 and pos.shape[2] == 4,
                        "instance mode - pos must have shape [>0, >0, 4]")
        else:
            _nvdr_check(pos.ndim == 2 and pos.shape[0] > 0 and pos.shape[1] == 4, "range mode - pos must have shape [>0, 4]")
            _nvdr_check(ranges.ndim == 2 and ranges.shape[0] > 0 and ranges.shape[1] == 2,
                        "range mode - ranges must have shape [>0, 2]")
        _nvdr_check(tri.ndim == 2 and tri.shape[0] > 0 and tri.shape[1] == 3, "tri must have shape [>0, 3]")
        _nvdr_check(resolution[0] > 0 and resolution[1] > 0, "resolution must be [>0, >0]")
        self._aligned(pos, "pos")
        return pos.shape[0] if pos.ndim == 3 else ranges.shape[0]

    def DepthPeeler(self, ctx, pos, tri, resolution, ranges=None, grad_db=True):  # noqa: N802 - nvdiffrast's name
        assert isinstance(pos, torch.Tensor) and isinstance(tri, torch.Tensor)
        resolution = tuple(resolution)
        ranges = torch.empty((0, 2), dtype=torch.int32) if ranges is None else ranges
        fake = self

        class Peeler:
            def __enter__(self):
                if ctx.active_depth_peeler is not None:
                    raise RuntimeError("Cannot have multiple depth peelers active simultaneously in a rasterization context")
                ctx.active_depth_peeler = self
                self.k = 0
                return self

            def __exit__(self, *args) -> None:
                ctx.active_depth_peeler = None

            def rasterize_next_layer(self):
                assert ctx.active_depth_peeler is self
                batch = fake._check_rasterize(ctx, pos, tri, resolution, ranges)
                _nvdr_check(batch == 1, "this emulation renders one image per call")
                fake.resolutions.append(resolution)
                frags = fake.gl.rasterize(pos[0], tri.long(), resolution, layers=self.k + 1)
                self.k += 1
                rast = torch.zeros((1, *resolution, 4), device=pos.device)
                rast[0, ..., :2] = frags.bary[-1, ..., :2] * fake.bary_overshoot
                rast[0, ..., 3] = (frags.tri_id[-1] + 1).float()
                return rast, torch.zeros_like(rast)

        return Peeler()

    def interpolate(self, attr, rast, tri, rast_db=None, diff_attrs=None):
        _nvdr_check(attr.device == rast.device == tri.device, "Inputs must reside on the same GPU device")
        self._contiguous(attr, rast, tri)
        _nvdr_check(attr.dtype == torch.float32 and rast.dtype == torch.float32, "attr and rast must be float32")
        _nvdr_check(tri.dtype == torch.int32, "tri must be int32")
        _nvdr_check(rast.ndim == 4 and min(rast.shape[:3]) > 0 and rast.shape[3] == 4, "rast must have shape[>0, >0, >0, 4]")
        _nvdr_check(tri.ndim == 2 and tri.shape[0] > 0 and tri.shape[1] == 3, "tri must have shape [>0, 3]")
        _nvdr_check(attr.ndim in (2, 3) and min(attr.shape) > 0, "attr must have shape [>0, >0, >0] or [>0, >0]")
        if attr.ndim == 3:
            _nvdr_check(attr.shape[0] in (rast.shape[0], 1), "minibatch size mismatch between inputs rast, attr")
        table = attr if attr.ndim == 3 else attr[None]
        ids = rast[..., 3].long() - 1
        valid = ids >= 0
        corners = tri.long()[ids.clamp(min=0)]
        u, v = rast[..., 0:1], rast[..., 1:2]
        batch = torch.arange(rast.shape[0]).view(-1, 1, 1) if table.shape[0] > 1 else torch.zeros((), dtype=torch.long)
        out = u * table[batch, corners[..., 0]] + v * table[batch, corners[..., 1]] + (1 - u - v) * table[batch, corners[..., 2]]
        return out * valid[..., None], torch.zeros((*rast.shape[:3], 0))

    def antialias(self, color, rast, pos, tri, topology_hash=None, pos_gradient_boost=1.0):
        _nvdr_check(color.device == rast.device == pos.device == tri.device, "Inputs must reside on the same GPU device")
        self._contiguous(color, rast, pos, tri)
        _nvdr_check(color.dtype == rast.dtype == pos.dtype == torch.float32, "color, rast and pos must be float32")
        _nvdr_check(tri.dtype == torch.int32, "tri must be int32")
        _nvdr_check(color.ndim == 4 and min(color.shape) > 0, "color must have shape[>0, >0, >0, >0]")
        _nvdr_check(rast.ndim == 4 and min(rast.shape[:3]) > 0 and rast.shape[3] == 4, "rast must have shape[>0, >0, >0, 4]")
        _nvdr_check(tri.ndim == 2 and tri.shape[0] > 0 and tri.shape[1] == 3, "tri must have shape [>0, 3]")
        _nvdr_check(color.shape[1:3] == rast.shape[1:3], "color and rast inputs must have same spatial dimensions")
        if pos.ndim > 2:
            _nvdr_check(pos.ndim == 3 and pos.shape[0] > 0 and pos.shape[1] > 0 and pos.shape[2] == 4,
                        "pos must have shape [>0, >0, 4] or [>0, 4]")
            _nvdr_check(rast.shape[0] == color.shape[0] == pos.shape[0], "minibatch size mismatch between inputs color, rast, pos")
        else:
            _nvdr_check(pos.ndim == 2 and pos.shape[0] > 0 and pos.shape[1] == 4, "pos must have shape [>0, >0, 4] or [>0, 4]")
            _nvdr_check(rast.shape[0] == color.shape[0], "minibatch size mismatch between inputs color, rast")
        ids = rast[..., 3].long() - 1
        _nvdr_check(bool((ids < tri.shape[0]).all()), "triangle id out of range")
        self._aligned(pos, "pos")
        self.antialias_calls += 1
        return color + 0.0 * pos.sum()  # keeps the autograd links; the real edge gradients are CUDA-tested


def _fake_backed(gl: GLRasterizer) -> tuple[NvdiffrastRasterizer, _FakeNvdiffrast]:
    fake = _FakeNvdiffrast(gl)
    rasterizer = object.__new__(NvdiffrastRasterizer)
    rasterizer.device = torch.device("cpu")
    rasterizer._dr = fake
    rasterizer._ctx = fake.RasterizeCudaContext()
    return rasterizer, fake


def _two_spheres(tools, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    cam = Camera.look_at(np.array([0.5, -0.3, -4.0]), np.zeros(3), np.array([0.0, -1.0, 0.0]), 40.0, width, height)
    mesh = trimesh.util.concatenate(
        [trimesh.creation.icosphere(3, radius=0.6), trimesh.creation.icosphere(3, radius=1.0).apply_translation([0.5, 0.2, 2.0])]
    )
    return tools.clip(cam, mesh.vertices), torch.tensor(mesh.faces), (height, width)


def _assert_close_fragments(a: Fragments, b: Fragments, max_id_mismatch: float) -> None:
    assert a.tri_id.shape == b.tri_id.shape
    same = a.tri_id == b.tri_id
    assert (~same).float().mean() <= max_id_mismatch
    both = same & a.covered
    assert both.sum() > 100
    assert (a.bary[both] - b.bary[both]).abs().max() < 1e-4
    assert torch.allclose(a.depth[both], b.depth[both], rtol=1e-5, atol=0)
    assert (a.bary[~a.covered] == 0).all() and torch.isinf(a.depth[~a.covered]).all()


@pytest.mark.gl
def test_the_emulation_refuses_what_nvdiffrast_refuses(gl_rasterizer: GLRasterizer, tools) -> None:
    """The fake is no mirror of our calls: range mode without ranges (the old bug), int64
    triangles, non-contiguous or misaligned positions are all refused, as nvdiffrast's C++ does."""
    pos, tri, resolution = _two_spheres(tools, width=40, height=32)
    fake = _FakeNvdiffrast(gl_rasterizer)
    ctx = fake.RasterizeCudaContext()
    tri32 = tri.to(torch.int32).contiguous()

    def peel(p, t, ranges=None):
        with fake.DepthPeeler(ctx, p, t, resolution, ranges=ranges) as peeler:
            return peeler.rasterize_next_layer()

    with pytest.raises(NvdiffrastRuleError, match="ranges must have shape"):
        peel(pos, tri32)
    with pytest.raises(NvdiffrastRuleError, match="int32"):
        peel(pos[None], tri)
    with pytest.raises(NvdiffrastRuleError, match="contiguous"):
        peel(pos[None, :, [0, 1, 2, 3]].transpose(1, 2).contiguous().transpose(1, 2), tri32)
    with pytest.raises(NvdiffrastRuleError, match="aligned"):
        peel(torch.cat([torch.zeros(1), pos.flatten()])[1:].view(1, -1, 4), tri32)
    rast, _ = peel(pos[None].contiguous(), tri32)
    assert rast.shape == (1, *resolution, 4) and (rast[..., 3] > 0).any()
    with pytest.raises(NvdiffrastRuleError, match="minibatch"):
        fake.antialias(torch.zeros((1, *resolution, 3)), rast, torch.zeros((2, 5, 4)), tri32)


@pytest.mark.gl
def test_backend_glue_against_an_emulated_nvdiffrast(gl_rasterizer: GLRasterizer, tools) -> None:
    """Culling, id mapping, instanced mode at any size, bary order and depth, without a GPU."""
    pos, tri, resolution = _two_spheres(tools, width=75, height=61)
    rasterizer, fake = _fake_backed(gl_rasterizer)
    ours = rasterizer.rasterize(pos, tri, resolution, layers=2)
    reference = gl_rasterizer.rasterize(pos, tri, resolution, layers=2)
    assert fake.resolutions == [(61, 75), (61, 75)]  # one call per peeled layer, no padding
    assert ours.covered[1].sum() > 100
    _assert_close_fragments(ours, reference, max_id_mismatch=1e-3)
    # Only back faces: nothing reaches nvdiffrast (it refuses zero triangles), all empty.
    back = tri[~torch.isin(torch.arange(len(tri)), front_facing(pos, tri))]
    assert len(back) > 100
    assert not rasterizer.rasterize(pos, back, resolution, layers=2).covered.any()
    assert len(fake.resolutions) == 2


@pytest.mark.gl
def test_barycentrics_past_their_face_from_nvdiffrast_are_clamped_onto_it(gl_rasterizer: GLRasterizer, tools) -> None:
    """Whatever nvdiffrast version is installed, the fragments keep (u, v, w) on the face, as the
    GL backend does: the interpolated point stays on its triangle."""
    pos, tri, resolution = _two_spheres(tools, width=75, height=61)
    rasterizer, fake = _fake_backed(gl_rasterizer)
    fake.bary_overshoot = 1.05
    frags = rasterizer.rasterize(pos, tri, resolution, layers=2)
    reference = gl_rasterizer.rasterize(pos, tri, resolution, layers=2)
    overshot = reference.covered & (reference.bary[..., :2].sum(dim=-1) * 1.05 > 1.0)
    assert overshot.sum() > 100  # the emulation did hand over u + v > 1 there
    bary = frags.bary[frags.covered]
    assert (bary >= 0).all() and (bary <= 1).all()
    assert torch.allclose(bary.sum(dim=-1), torch.ones(len(bary)), atol=1e-6)
    assert (frags.bary[~frags.covered] == 0).all()


@pytest.mark.gl
def test_antialias_edges_glue_against_an_emulated_nvdiffrast(gl_rasterizer: GLRasterizer) -> None:
    """Renderer(edges="antialias") hands nvdiffrast arguments it accepts, and gradients reach the
    vertices and the shading through it."""
    rasterizer, fake = _fake_backed(gl_rasterizer)
    renderer = Renderer(rasterizer, "cpu", layers=1, edges="antialias")
    assert renderer.backend == "nvdiffrast"
    mesh = trimesh.creation.icosphere(3, radius=0.6)
    v = torch.tensor(mesh.vertices, dtype=torch.float32, requires_grad=True)
    f = torch.tensor(mesh.faces)
    n = torch.tensor(mesh.vertex_normals, dtype=torch.float32)
    cam = Camera.look_at(np.array([0.3, 0.4, -2.5]), np.zeros(3), np.array([0.0, 1.0, 0.0]), 45.0, 45, 37)
    out = renderer.render(v, f, cam, shade=lambda p, nrm, d: torch.sigmoid(p + nrm), normals=n)
    assert fake.antialias_calls == 1
    assert out.image.shape == (37, 45, 3) and out.alpha.shape == (37, 45)
    assert 0 < float(out.alpha.detach().mean()) < 1
    out.image.sum().backward()
    assert v.grad is not None and v.grad.abs().sum() > 0


def test_make_rasterizer_choices(caplog: pytest.LogCaptureFixture) -> None:
    assert isinstance(make_rasterizer("gl"), GLRasterizer)
    with pytest.raises(ValueError, match="backend"):
        make_rasterizer("vulkan")
    with caplog.at_level(logging.INFO, logger="render.rasterize"):
        chosen = make_rasterizer("auto")
    expected = GLRasterizer if _SKIP_REASON is not None else NvdiffrastRasterizer
    assert isinstance(chosen, expected)
    assert "rasterizer backend" in caplog.text
    if _SKIP_REASON is not None:
        with pytest.raises(RuntimeError):
            make_rasterizer("nvdiffrast")


def _snap_to_sixteenth_pixel(pos: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
    """Move vertices onto nvdiffrast's 1/16-pixel grid so that both rasterizers see one triangle set."""
    height, width = resolution
    p = pos.double()
    w = p[:, 3]
    size = torch.tensor([width, height], dtype=torch.float64)
    pix = (p[:, :2] / w[:, None] + 1) * 0.5 * size
    pix = torch.round(pix * 16) / 16
    xy = (2 * pix / size - 1) * w[:, None]
    return torch.cat([xy, p[:, 2:]], dim=1).float()


@needs_nvdiffrast
@pytest.mark.cuda
@pytest.mark.gl
@pytest.mark.parametrize("layers", [1, 2, 3, 4])
@pytest.mark.parametrize("resolution", [(96, 128), (61, 75)])
def test_nvdiffrast_matches_gl(gl_rasterizer: GLRasterizer, tools, resolution: tuple[int, int], layers: int) -> None:
    pos, tri, _ = _two_spheres(tools, width=resolution[1], height=resolution[0])
    pos = _snap_to_sixteenth_pixel(pos, resolution)
    cuda = NvdiffrastRasterizer()
    ours = cuda.rasterize(pos.cuda(), tri.cuda(), resolution, layers=layers)
    assert ours.tri_id.device.type == "cuda" and ours.tri_id.shape == (layers, *resolution)
    reference = gl_rasterizer.rasterize(pos, tri, resolution, layers=layers)
    assert ours.covered[min(layers, 2) - 1].sum() > 100
    _assert_close_fragments(ours.to("cpu"), reference, max_id_mismatch=1e-3)
    # CPU inputs come back on the CPU.
    assert rasterize(cuda, pos, tri, resolution).tri_id.device.type == "cpu"


def _sphere_scene(width: int = 96, height: int = 80) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Camera]:
    mesh = trimesh.creation.icosphere(4, radius=0.6)
    cam = Camera.look_at(np.array([0.4, 0.6, -2.5]), np.zeros(3), np.array([0.0, 1.0, 0.0]), 45.0, width, height)
    v = torch.tensor(mesh.vertices, dtype=torch.float32)
    return v, torch.tensor(mesh.faces), torch.tensor(mesh.vertex_normals, dtype=torch.float32), cam


def _shade(p: torch.Tensor, n: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(torch.cat([p, n, d], -1) @ torch.linspace(-1, 1, 27, device=p.device).view(9, 3))


@needs_nvdiffrast
@pytest.mark.cuda
@pytest.mark.gl
def test_splat_edges_on_cuda_match_the_cpu_gl_render(gl_rasterizer: GLRasterizer) -> None:
    """Same image and same gradient direction from the CUDA backend as from GL on the CPU."""
    v, f, n, cam = _sphere_scene()
    shift = torch.tensor([0.03, -0.02, 0.0])
    outs = []
    for renderer, dev in ((Renderer("nvdiffrast", "cuda"), "cuda"), (Renderer("gl", "cpu"), "cpu")):
        target = renderer.render(v.to(dev) + shift.to(dev), f.to(dev), cam, _shade, n.to(dev))
        t = torch.zeros(3, device=dev, requires_grad=True)
        out = renderer.render(v.to(dev) + t, f.to(dev), cam, _shade, n.to(dev))
        loss = (out.image - target.image).abs().mean() + (out.alpha - target.alpha).abs().mean()
        loss.backward()
        outs.append((out.image.detach().cpu(), out.alpha.detach().cpu(), t.grad.cpu()))
    (img_c, a_c, g_c), (img_g, a_g, g_g) = outs
    assert (a_c - a_g).abs().mean() < 0.01 and (img_c - img_g).abs().mean() < 0.01
    assert torch.nn.functional.cosine_similarity(g_c, g_g, dim=0) > 0.95
    assert torch.nn.functional.cosine_similarity(-g_c, shift, dim=0) > 0.8


@needs_nvdiffrast
@pytest.mark.cuda
@pytest.mark.parametrize("edges", ["splat", "antialias"])
def test_cuda_gradients_match_finite_differences(edges: str) -> None:
    """d loss / d translation by autograd against central differences of the whole render
    (fragments re-sampled at every offset), for both silhouette-gradient mechanisms."""
    renderer = Renderer("nvdiffrast", "cuda", layers=2, edges=edges)
    v, f, n, cam = _sphere_scene(128, 112)
    v, f, n = v.cuda(), f.cuda(), n.cuda()
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 112), torch.linspace(0, 1, 128), indexing="ij")
    weights = (1 + xs + 0.5 * ys).cuda()  # smooth, so a one-pixel difference quotient is free of aliasing

    def loss(t: torch.Tensor) -> torch.Tensor:
        out = renderer.render(v + t, f, cam, _shade, n)
        return ((out.image.sum(-1) + out.alpha) * weights).sum()

    t = torch.zeros(3, device="cuda", requires_grad=True)
    (grad,) = torch.autograd.grad(loss(t), t)
    h = float(np.linalg.norm(cam.center)) / cam.K[0, 0]  # one pixel of motion at the sphere's centre
    eye = torch.eye(3, device="cuda")
    numeric = torch.stack([(loss(eye[i] * h) - loss(-eye[i] * h)) / (2 * h) for i in range(2)])
    assert numeric.abs().max() > 1.0
    assert torch.allclose(grad[:2], numeric, rtol=0.2, atol=0.05 * float(numeric.abs().max())), (grad, numeric)


def test_a_plugin_built_but_not_importable_is_imported_from_its_build_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """nvdiffrast 0.3.x imports its JIT-built plugin by name; torch 2.11 no longer puts the build
    folder on sys.path (seen on an H200: 'No module named nvdiffrast_plugin_…'). The backend adds
    the folder and tries again; other import errors pass through."""
    from torch.utils import cpp_extension

    from render.backends.nvdiffrast import _make_context

    name = "nvdiffrast_plugin_0_3_3_1_torch_test"
    folder = cpp_extension._get_build_directory(name, False)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p != folder])

    class FakeDr:
        calls = 0

        def RasterizeCudaContext(self, device=None):  # noqa: N802 - nvdiffrast's name
            FakeDr.calls += 1
            if folder not in __import__("sys").path:
                raise ModuleNotFoundError(f"No module named '{name}'", name=name)
            return SimpleNamespace(device=device)

    assert _make_context(FakeDr(), torch.device("cpu")).device == torch.device("cpu")
    assert FakeDr.calls == 2

    class Broken:
        def RasterizeCudaContext(self, device=None):  # noqa: N802
            raise ModuleNotFoundError("No module named 'numpy'", name="numpy")

    with pytest.raises(ModuleNotFoundError, match="numpy"):
        _make_context(Broken(), torch.device("cpu"))
