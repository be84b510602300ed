"""CUDA rasterizer through nvdiffrast (`RasterizeCudaContext` + `DepthPeeler`), same output as gl.py.

Conventions and argument rules checked against nvdiffrast's sources (0.3.3 and 0.4.0,
`torch/ops.py` and `torch/torch_rasterize.cpp`, `torch_interpolate.cpp`, `torch_antialias.cpp`):

* A 2-D `pos` means *range mode*, which needs a CPU int32 `ranges` tensor of shape [>0, 2]; we
  always use *instanced mode* instead: `pos` of shape [1, V, 4], one image per call.
* Every tensor must be contiguous, on the context's CUDA device; positions, attributes and colours
  float32; triangles int32. Any resolution > 0 works: the rasterizer rounds its internal buffers
  up to its 8-pixel tiles itself.

* Output row r of `rast` is sampled at NDC y = (2r + 1)/H − 1, i.e. row 0 nearest NDC y = −1.
  Our clip space has NDC y = 2v/H − 1 with v the image row coordinate, so rast row r *is* image
  row r (pixel centre v = r + 0.5): no flip, exactly like the GL backend.
* `rast[..., :4]` = (u, v, z/w, triangle_id + 1) where u weighs the face's vertex 0, v vertex 1
  and 1 − u − v vertex 2 (nvdiffrast's interpolate computes u·a0 + v·a1 + (1−u−v)·a2); empty
  pixels are all zero. The id is stored in a float32, exact for up to 2^24 faces.
* nvdiffrast never culls. We drop back faces ourselves with the homogeneous orientation test
  det[(x, y, w)_0; (x, y, w)_1; (x, y, w)_2] = w0·w1·w2 · (signed NDC area): its sign is the
  facing of the visible part even for triangles crossing w = 0, which nvdiffrast then clips to
  the frustum like GL does. Outward CCW faces are clockwise in our NDC (negative area) and kept.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import torch

from render.backends._common import check_raster_inputs, empty_fragments
from render.fragments import Fragments
from render.interpolate import interpolate

log = logging.getLogger(__name__)

_MAX_FACES = 1 << 24  # triangle ids pass through a float32 channel


def _make_context(dr: Any, device: torch.device) -> Any:
    """nvdiffrast's CUDA context; its first creation builds the CUDA plugin.

    nvdiffrast 0.3.x builds the plugin with torch's JIT loader and then imports it by name, but
    newer torch (2.11 seen) loads JIT modules without putting their build folder on sys.path, so
    that import fails after a successful build. The folder is added and creation tried again.
    """
    try:
        return dr.RasterizeCudaContext(device=device)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("nvdiffrast_plugin"):
            raise
        from torch.utils import cpp_extension

        folder = cpp_extension._get_build_directory(exc.name, False)
        log.info("nvdiffrast plugin %s built in %s; importing it from there", exc.name, folder)
        sys.path.insert(0, folder)
        return dr.RasterizeCudaContext(device=device)


def front_facing(pos_clip: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Indices of the faces that our convention keeps (clockwise in NDC, seen from the front).

    Args:
        pos_clip: (V, 4) float32 clip positions.
        tri: (F, 3) int64/int32 faces on the same device.

    Returns:
        (F',) int64 indices into `tri`, increasing.
    """
    xyw = pos_clip[:, (0, 1, 3)]
    a, b, c = xyw[tri[:, 0]], xyw[tri[:, 1]], xyw[tri[:, 2]]
    det = (a * torch.linalg.cross(b, c, dim=1)).sum(dim=1)
    return torch.nonzero(det < 0).squeeze(1)


class NvdiffrastRasterizer:
    """Rasterizer context on nvdiffrast's CUDA rasterizer (never its OpenGL one).

    Same method and outputs as `GLRasterizer`. Inputs on another device are copied to this
    context's CUDA device; results come back on `pos_clip`'s device.

    Args:
        device: CUDA device for the context; the current one if None.

    Raises:
        RuntimeError: when nvdiffrast is not installed or CUDA is unavailable.
    """

    def __init__(self, device: torch.device | str | int | None = None) -> None:
        try:
            import nvdiffrast.torch as dr
        except ImportError as exc:
            raise RuntimeError(
                f"nvdiffrast is not installed ({exc}); install the CUDA extra: "
                "pip install 'reconstruct[cuda]' (package diffrp-nvdiffrast), or use backend='gl'"
            ) from exc
        if not torch.cuda.is_available():
            raise RuntimeError("NvdiffrastRasterizer needs CUDA, but torch.cuda.is_available() is False")
        if device is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        else:
            self.device = torch.device(device)
            if self.device.type != "cuda":
                raise ValueError(f"NvdiffrastRasterizer needs a CUDA device, got {self.device}")
            if self.device.index is None:
                self.device = torch.device("cuda", torch.cuda.current_device())
        self._dr: Any = dr
        self._ctx: Any = _make_context(dr, self.device)
        log.info("nvdiffrast CUDA rasterizer on %s (%s)", self.device, torch.cuda.get_device_name(self.device))

    def rasterize(
        self,
        pos_clip: torch.Tensor,
        tri: torch.Tensor,
        resolution: Sequence[int],
        layers: int = 1,
    ) -> Fragments:
        """Rasterize triangles into K depth-peeled layers (back faces culled; not differentiable).

        Args:
            pos_clip: (V, 4) float32 clip-space vertex positions, any device.
            tri: (F, 3) int64 (or int32) vertex indices, same device; outward faces CCW.
            resolution: (H, W) output size in pixels.
            layers: K >= 1, the number of depth layers to return.

        Returns:
            Fragments with tri_id (K, H, W) int64 (-1 empty), bary (K, H, W, 3) float32 and
            depth (K, H, W) float32 camera z (+inf empty), front-most layer first, on
            `pos_clip`'s device.
        """
        height, width = check_raster_inputs(pos_clip, tri, resolution, layers)
        if tri.shape[0] > _MAX_FACES:
            raise ValueError(f"nvdiffrast handles at most {_MAX_FACES} faces, got {tri.shape[0]}")
        out_device = pos_clip.device
        with torch.no_grad():
            pos = pos_clip.detach().to(self.device, torch.float32).contiguous()
            faces = tri.detach().to(self.device)
            keep = front_facing(pos, faces) if faces.shape[0] else faces.new_empty(0)
            if keep.numel() == 0:
                return empty_fragments(layers, height, width, out_device)
            frags = self._peel(pos, faces[keep].to(torch.int32).contiguous(), keep, height, width, layers)
        return frags if out_device == self.device else frags.to(out_device)

    def antialias(
        self, colour: torch.Tensor, pos_clip: torch.Tensor, tri: torch.Tensor, frags: Fragments
    ) -> torch.Tensor:
        """nvdiffrast's analytic antialiasing of the front layer: silhouette gradients without splatting.

        Args:
            colour: (H, W, C) shaded front layer (differentiable), on this context's device.
            pos_clip: (V, 4) clip positions the fragments were rasterized from (differentiable).
            tri: (F, 3) int64 faces.
            frags: the Fragments of `rasterize(pos_clip, tri, ...)`; only layer 0 is used.

        Returns:
            (H, W, C) antialiased image; gradients reach `colour` and `pos_clip`.
        """
        with torch.no_grad():
            covered = frags.covered[0]
            # nvdiffrast's raster layout (u, v, z/w, id + 1); z/w from clip z interpolated
            # perspective-correctly and divided by w (= camera depth).
            clip_z = interpolate(pos_clip.detach()[:, 2:3], tri, Fragments(frags.tri_id[:1], frags.bary[:1], frags.depth[:1]))
            zw = torch.where(covered, clip_z[0, ..., 0] / frags.depth[0].clamp(min=1e-12), 0.0)
            rast = torch.stack(
                [frags.bary[0, ..., 0], frags.bary[0, ..., 1], zw, (frags.tri_id[0] + 1).to(torch.float32)], dim=-1
            )[None].contiguous()
            faces = tri.to(torch.int32).contiguous()
        out = self._dr.antialias(colour[None].contiguous(), rast, pos_clip[None].contiguous(), faces)
        return out[0]

    def _peel(
        self,
        pos: torch.Tensor,
        sub_tri: torch.Tensor,
        keep: torch.Tensor,
        height: int,
        width: int,
        layers: int,
    ) -> Fragments:
        """Depth-peel the front-facing subset `sub_tri` (= tri[keep]); ids are mapped back via keep."""
        dr = self._dr
        pos = pos[None].contiguous()  # instanced mode, minibatch of one (a 2-D pos is range mode)
        w_attr = pos[..., 3:4].contiguous()
        tri_id = torch.empty((layers, height, width), dtype=torch.int64, device=self.device)
        bary = torch.empty((layers, height, width, 3), dtype=torch.float32, device=self.device)
        depth = torch.empty((layers, height, width), dtype=torch.float32, device=self.device)
        with dr.DepthPeeler(self._ctx, pos, sub_tri, (height, width)) as peeler:
            for k in range(layers):
                rast, _ = peeler.rasterize_next_layer()
                w_interp, _ = dr.interpolate(w_attr, rast, sub_tri)
                rast = rast[0]
                sub_id = rast[..., 3].to(torch.int64) - 1
                covered = sub_id >= 0
                tri_id[k] = torch.where(covered, keep[sub_id.clamp(min=0)], -1)
                u, v = rast[..., 0], rast[..., 1]
                # On the face, as the GL backend keeps them: nvdiffrast's CUDA rasterizer before
                # 0.3.5 could return u + v > 1 (NVlabs/nvdiffrast#229), i.e. a negative third weight.
                on_face = torch.stack([u, v, 1.0 - u - v], dim=-1).clamp(min=0.0)
                bary[k] = on_face / on_face.sum(dim=-1, keepdim=True).clamp(min=1e-12) * covered[..., None]
                depth[k] = torch.where(covered, w_interp[0, ..., 0], float("inf"))
        return Fragments(tri_id=tri_id, bary=bary, depth=depth)
