"""Gathering rows by index and summing rows into an index: the mesh's and the G-buffer's bookkeeping.

On the CPU, `index_add_` along dim 0 of an (N, C) tensor with a few channels (C = 3 or 4: positions,
normals, RGBA) goes through a scatter kernel that handles one element at a time, ~10 ns each; the
same sum along dim 1 of the (C, N) transpose runs 5–20× faster and gives bit-identical results (each
output element still sums its sources in index order). Autograd's backward of `index_select` is that
slow dim-0 index_add, so `gather_rows` brings its own backward; and autograd's backward of the
transposed sum would gather along dim 1, 2× slower than along the rows, so `index_add_rows` brings
its own too. The transposed sum pays a copy of all the output rows back to (rows, C), so few sources
into many rows (a large mesh's vertices from a view's samples) keep the plain scatter. Other devices
keep the plain ops.
"""

from __future__ import annotations

import torch

__all__ = ["gather_rows", "index_add_rows"]


def index_add_rows(rows: int, index: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """zeros(rows, C).index_add(0, index, source) for an (N, C) `source`: row index[i] += source[i].

    Differentiable w.r.t. `source` (its gradient is a gather of rows).
    """
    if source.device.type != "cpu" or source.dim() != 2 or 4 * source.shape[0] < rows:
        return source.new_zeros(rows, *source.shape[1:]).index_add_(0, index, source)
    if source.requires_grad:
        return _AddRows.apply(rows, index, source)
    return _transposed_sum(rows, index, source)


def _transposed_sum(rows: int, index: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    return source.new_zeros(source.shape[1], rows).index_add_(1, index, source.t()).t().contiguous()


class _AddRows(torch.autograd.Function):
    """The transposed sum, whose backward gathers the gradient's rows (dim 0) with `gather_rows`."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, rows: int, index: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        return _transposed_sum(rows, index, source)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        (index,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return None, None, gather_rows(grad.contiguous(), index)


class _GatherRows(torch.autograd.Function):
    """x.index_select(0, index) whose backward sums with `index_add_rows`."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.rows = x.shape[0]  # type: ignore[attr-defined]
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (index,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return index_add_rows(ctx.rows, index, grad), None  # type: ignore[attr-defined]


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[index] for a 1-D `index` over the rows of an (N, C) `x`, differentiable w.r.t. `x`.

    Neither `x[index]` (backward: index_put, slower still) nor `index_select` (backward: the slow
    dim-0 index_add on the CPU); see the module docstring.
    """
    if x.device.type != "cpu" or x.dim() != 2 or not x.requires_grad:
        return x.index_select(0, index)
    return _GatherRows.apply(x, index)
