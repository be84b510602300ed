"""gather_rows and index_add_rows: the same numbers as index_select / index_add, gradients included."""

from __future__ import annotations

import torch

from render.rows import gather_rows, index_add_rows


def _case(rows: int = 500, n: int = 2000, channels: int = 3, dtype: torch.dtype = torch.float32):
    g = torch.Generator().manual_seed(0)
    index = torch.randint(0, rows, (n,), generator=g)
    source = torch.randn(n, channels, generator=g, dtype=dtype)
    return index, source


def test_index_add_rows_is_bit_identical_to_index_add() -> None:
    # Many sources into few rows (the transposed sum) and few into many (the plain scatter).
    for rows, n in ((500, 2000), (5000, 200)):
        for channels in (1, 3, 4, 6):
            index, source = _case(rows, n, channels)
            expected = torch.zeros(rows, channels).index_add_(0, index, source)
            got = index_add_rows(rows, index, source)
            assert got.shape == (rows, channels) and got.is_contiguous()
            assert torch.equal(got, expected)  # same additions in the same order per row
    index, source = _case()
    strided = torch.randn(3, 2000).t()  # a transposed (non-contiguous) source reads the same
    assert torch.equal(index_add_rows(500, index, strided), torch.zeros(500, 3).index_add_(0, index, strided))


def test_gather_rows_matches_index_select_forward_and_backward() -> None:
    index, _ = _case()
    x = torch.randn(500, 4, requires_grad=True)
    weights = torch.randn(2000, 4)
    mine = gather_rows(x, index)
    (mine * weights).sum().backward()
    mine_grad = x.grad.clone()
    x.grad = None
    theirs = x.index_select(0, index)
    (theirs * weights).sum().backward()
    assert torch.equal(mine, theirs)
    assert torch.equal(mine_grad, x.grad)
    assert mine.grad_fn is not None and "GatherRows" in type(mine.grad_fn).__name__  # the fast backward ran


def test_gather_rows_and_index_add_rows_have_correct_first_and_second_derivatives() -> None:
    index, _ = _case(rows=7, n=20, dtype=torch.float64)
    x = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: gather_rows(t, index), (x,))
    assert torch.autograd.gradgradcheck(lambda t: gather_rows(t, index) ** 2, (x,))
    source = torch.randn(20, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: index_add_rows(7, index, s), (source,))
    assert torch.autograd.gradgradcheck(lambda s: index_add_rows(7, index, s) ** 2, (source,))
    summed = index_add_rows(7, index, source)
    assert "AddRows" in type(summed.grad_fn).__name__  # the transposed sum's own backward ran


def test_rows_without_gradients_or_empty_index() -> None:
    x = torch.randn(5, 3)
    empty = torch.zeros(0, dtype=torch.long)
    assert gather_rows(x, empty).shape == (0, 3)
    assert torch.equal(index_add_rows(5, empty, torch.zeros(0, 3)), torch.zeros(5, 3))
