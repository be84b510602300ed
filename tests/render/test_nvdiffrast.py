"""The nvdiffrast backend: back-face test and glue (everywhere), parity with GL (CUDA + nvdiffrast only)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import trimesh

from render import Camera, Fragments, make_rasterizer, rasterize
from render.backends.gl import GLRasterizer
from render.backends.nvdiffrast import NvdiffrastRasterizer, front_facing


def _nvdiffrast_skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "needs CUDA (torch.cuda.is_available() is False)"
    try:
        import nvdiffrast.torch  # noqa: F401
    except ImportError as exc:
        return f"needs nvdiffrast (pip install 'reconstruct[cuda]'): {exc}"
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


class _FakeNvdiffrast:
    """Stands in for `nvdiffrast.torch` on machines without CUDA, emulating its documented
    conventions with the GL rasterizer: rast = (u, v, z/w, id + 1), u weighing vertex 0,
    row r at NDC y = (2r + 1)/H − 1, no culling of its own (it is fed front faces only)."""

    def __init__(self, gl: GLRasterizer) -> None:
        self.gl = gl
        self.resolutions: list[tuple[int, int]] = []

    def RasterizeCudaContext(self, device=None) -> SimpleNamespace:  # noqa: N802 - nvdiffrast's name
        return SimpleNamespace()

    def DepthPeeler(self, ctx, pos, tri, resolution):  # noqa: N802 - nvdiffrast's name
        fake = self
        assert pos.dtype == torch.float32 and pos.is_contiguous() and pos.shape[1] == 4
        assert tri.dtype == torch.int32 and tri.is_contiguous()
        assert resolution[0] % 8 == 0 and resolution[1] % 8 == 0
        fake.resolutions.append(tuple(resolution))

        class Peeler:
            def __enter__(self):
                self.k = 0
                return self

            def __exit__(self, *args) -> None:
                pass

            def rasterize_next_layer(self):
                frags = fake.gl.rasterize(pos, tri.long(), resolution, layers=self.k + 1)
                self.k += 1
                rast = torch.zeros((1, *resolution, 4))
                rast[0, ..., :2] = frags.bary[-1, ..., :2]
                rast[0, ..., 3] = (frags.tri_id[-1] + 1).float()
                return rast, torch.zeros((1, *resolution, 4))

        return Peeler()

    @staticmethod
    def interpolate(attr, rast, tri):
        ids = rast[..., 3].long() - 1
        valid = ids >= 0
        corners = tri.long()[ids.clamp(min=0)]
        u, v = rast[..., 0:1], rast[..., 1:2]
        out = u * attr[corners[..., 0]] + v * attr[corners[..., 1]] + (1 - u - v) * attr[corners[..., 2]]
        return out * valid[..., None], None


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
def test_backend_glue_against_an_emulated_nvdiffrast(gl_rasterizer: GLRasterizer, tools) -> None:
    """Culling, id mapping, padding to multiples of 8, bary order and depth, without a GPU."""
    pos, tri, resolution = _two_spheres(tools, width=75, height=61)
    rasterizer, fake = _fake_backed(gl_rasterizer)
    ours = rasterizer.rasterize(pos, tri, resolution, layers=2)
    reference = gl_rasterizer.rasterize(pos, tri, resolution, layers=2)
    assert fake.resolutions == [(64, 80)]
    assert ours.covered[1].sum() > 100
    _assert_close_fragments(ours, reference, max_id_mismatch=1e-3)
    # Only back faces: nothing reaches nvdiffrast, all empty.
    back = tri[~torch.isin(torch.arange(len(tri)), front_facing(pos, tri))]
    assert len(back) > 100
    assert not rasterizer.rasterize(pos, back, resolution, layers=2).covered.any()
    assert len(fake.resolutions) == 1


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
@pytest.mark.parametrize("resolution", [(96, 128), (61, 75)])
def test_nvdiffrast_matches_gl(gl_rasterizer: GLRasterizer, tools, resolution: tuple[int, int]) -> None:
    pos, tri, _ = _two_spheres(tools, width=resolution[1], height=resolution[0])
    pos = _snap_to_sixteenth_pixel(pos, resolution)
    cuda = NvdiffrastRasterizer()
    ours = cuda.rasterize(pos.cuda(), tri.cuda(), resolution, layers=2)
    assert ours.tri_id.device.type == "cuda"
    reference = gl_rasterizer.rasterize(pos, tri, resolution, layers=2)
    assert ours.covered[1].sum() > 100
    _assert_close_fragments(ours.to("cpu"), reference, max_id_mismatch=1e-3)
    # CPU inputs come back on the CPU.
    assert rasterize(cuda, pos, tri, resolution).tri_id.device.type == "cpu"
