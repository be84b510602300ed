"""Which number format the shader's matrix products use while training, and running it that way.

The shader MLP is most of an NDS step on the CPU (its products are ~60 % of the step at 256²).
CPUs with native bfloat16 dot products (AVX-512 BF16, AMX) run those products ~3× faster in
bfloat16. Only the products change: the weights, their optimiser, the positional encoding, the
G-buffer and the splatting stay float32 (autocast), and the colours leave the shader as float32.
Viewing, exporting and evaluating always use float32.

The rows go in padded to a few sizes: oneDNN, which runs the bfloat16 products, compiles a kernel
for each new matrix shape, and the number of samples a view covers changes every step. Without
padding nearly every product recompiled, which made them ~3× slower than at a repeated shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["PRECISIONS", "native_bfloat16", "padded_rows", "resolve_precision", "with_precision"]

PRECISIONS = ("auto", "float32", "bfloat16")
ROW_STEPS_LOG2 = 3  # 2³ padded sizes per doubling of the row count: < 1/8 more rows, 8 kernels per octave
MIN_ROW_STEP = 64


def native_bfloat16() -> bool:
    """Whether this CPU has bfloat16 dot products in hardware (emulated ones are slower than float32)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, so probed, never required
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' → bfloat16 on a CPU with native bfloat16, else float32 (CUDA keeps the paper's float32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"shader precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bfloat16" if device.type == "cpu" and native_bfloat16() else "float32"


def padded_rows(rows: int) -> int:
    """`rows` rounded up to a multiple of 2^(⌊log₂ rows⌋ − ROW_STEPS_LOG2), at least MIN_ROW_STEP."""
    step = max(MIN_ROW_STEP, 1 << max(rows.bit_length() - 1 - ROW_STEPS_LOG2, 0))
    return -(-rows // step) * step


def with_precision(fn: Callable[..., torch.Tensor], precision: str, device: torch.device) -> Callable[..., torch.Tensor]:
    """`fn` with its matrix products in `precision` (a resolved one) and a float32 result.

    `fn` must treat its inputs' rows (the leading dimensions, broadcast together) independently:
    in bfloat16 they are padded with zero rows to `padded_rows`, whose results are dropped.
    """
    if precision == "float32":
        return fn

    def run(*args: torch.Tensor) -> torch.Tensor:
        lead = torch.broadcast_shapes(*(a.shape[:-1] for a in args))
        rows = math.prod(lead)
        extra = padded_rows(rows) - rows
        flat = [a.expand(*lead, a.shape[-1]).reshape(rows, a.shape[-1]) for a in args]
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = fn(*(torch.nn.functional.pad(a, (0, 0, 0, extra)) for a in flat))
        return out[:rows].float().reshape(*lead, out.shape[-1])

    return run
