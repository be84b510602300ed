"""interpolate(): values against a dense reference, zeros where empty, gradients to vertices only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from render import Camera, Fragments, interpolate, rasterize


def _random_fragments(generator: torch.Generator, n_faces: int, shape: tuple[int, int, int]) -> Fragments:
    """Frozen fragments: random face ids (about a third empty) and random barycentrics summing to 1."""
    tri_id = torch.randint(-1, n_faces, shape, generator=generator)
    tri_id[torch.rand(shape, generator=generator) < 0.25] = -1
    bary = torch.rand((*shape, 3), generator=generator) + 0.05
    bary = bary / bary.sum(-1, keepdim=True)
    empty = tri_id < 0
    bary[empty] = 0
    depth = torch.where(empty, float("inf"), 1.0 + torch.rand(shape, generator=generator))
    return Fragments(tri_id=tri_id, bary=bary.float(), depth=depth.float())


def _dense_reference(attr: torch.Tensor, tri: torch.Tensor, frags: Fragments) -> torch.Tensor:
    """Gathers all K·H·W·3 corners (memory-hungry, so not the implementation) and masks afterwards."""
    corners = tri[frags.tri_id.clamp(min=0)]  # (K, H, W, 3)
    values = (attr[corners] * frags.bary.to(attr.dtype)[..., None]).sum(dim=-2)
    return values * frags.covered[..., None]


def test_values_match_dense_reference_and_are_zero_where_empty() -> None:
    g = torch.Generator().manual_seed(0)
    attr = torch.randn(7, 5, generator=g)
    tri = torch.randint(0, 7, (6, 3), generator=g)
    frags = _random_fragments(g, 6, (2, 5, 4))
    out = interpolate(attr, tri, frags)
    assert out.shape == (2, 5, 4, 5) and out.dtype == attr.dtype
    assert torch.allclose(out, _dense_reference(attr, tri, frags), atol=1e-6)
    assert (out[~frags.covered] == 0).all()
    assert frags.covered.any() and (~frags.covered).any()


def test_all_empty_fragments_give_zeros() -> None:
    frags = Fragments(
        tri_id=torch.full((1, 3, 2), -1), bary=torch.zeros(1, 3, 2, 3), depth=torch.full((1, 3, 2), float("inf"))
    )
    attr = torch.randn(3, 2, requires_grad=True)
    out = interpolate(attr, torch.tensor([[0, 1, 2]]), frags)
    assert out.shape == (1, 3, 2, 2) and (out == 0).all()
    out.sum().backward()
    assert (attr.grad == 0).all()


def test_gradcheck_float64() -> None:
    g = torch.Generator().manual_seed(1)
    tri = torch.tensor([[0, 1, 2], [2, 1, 3], [3, 4, 0]])
    frags = _random_fragments(g, 3, (2, 3, 3))
    attr = torch.randn(6, 2, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: interpolate(a, tri, frags), (attr,))


def test_gradient_reaches_only_sampled_vertices() -> None:
    g = torch.Generator().manual_seed(2)
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]])
    frags = _random_fragments(g, 1, (1, 4, 4))  # only face 0 is ever sampled
    attr = torch.randn(6, 3, requires_grad=True)
    interpolate(attr, tri, frags).sum().backward()
    # d(sum)/d(attr[v]) = sum of v's barycentric weights over the samples, the same for every channel.
    weights = frags.bary[frags.covered].sum(0)
    assert torch.allclose(attr.grad[:3], weights[:, None].expand(3, 3), atol=1e-5)
    assert (attr.grad[3:] == 0).all()


def test_int32_faces_and_bad_inputs() -> None:
    g = torch.Generator().manual_seed(3)
    attr = torch.randn(4, 2)
    tri = torch.tensor([[0, 1, 2], [1, 3, 2]])
    frags = _random_fragments(g, 2, (1, 2, 2))
    assert torch.equal(interpolate(attr, tri.int(), frags), interpolate(attr, tri, frags))
    with pytest.raises(ValueError, match="attr"):
        interpolate(attr[:, 0], tri, frags)
    with pytest.raises(ValueError, match="floating"):
        interpolate(attr.long(), tri, frags)
    with pytest.raises(ValueError, match="tri"):
        interpolate(attr, tri[:, :2], frags)


@pytest.mark.gl
def test_interpolated_positions_land_on_pixel_centres(gl_rasterizer, tools) -> None:
    """With real fragments: interpolated world positions project to pixel centres at `depth`."""
    mesh = trimesh.creation.icosphere(2)
    cam = Camera.look_at(np.array([0.3, -0.4, -2.2]), np.zeros(3), np.array([0.0, -1.0, 0.0]), 45.0, 64, 48)
    verts = torch.tensor(mesh.vertices, dtype=torch.float32, requires_grad=True)
    tri = torch.tensor(mesh.faces)
    frags = rasterize(gl_rasterizer, tools.clip(cam, mesh.vertices), tri, (cam.height, cam.width))
    points = interpolate(verts, tri, frags)
    covered = frags.covered[0]
    pix, z = cam.project(points[0][covered].detach().double().numpy())
    rows, cols = np.nonzero(covered.numpy())
    assert covered.sum() > 300
    assert np.abs(pix - np.c_[cols + 0.5, rows + 0.5]).max() < 2e-3
    assert np.allclose(z, frags.depth[0][covered].numpy(), rtol=1e-5)
    points[0][covered].sum().backward()
    assert verts.grad is not None and verts.grad.abs().sum() > 0
