"""Which number format the shader's matrix products use while training, and running it that way.

The shader MLP is most of an NDS step on the CPU (its products are ~60 % of the step at 256²).
CPUs with native bfloat16 dot products (AVX-512 BF16, AMX) run those products ~3× faster in
bfloat16. Only the products change: the weights, their optimiser, the positional encoding, the
G-buffer and the splatting stay float32 (autocast), and the colours leave the shader as float32.
Viewing, exporting and evaluating always use float32.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["PRECISIONS", "native_bfloat16", "resolve_precision", "with_precision"]

PRECISIONS = ("auto", "float32", "bfloat16")


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


def with_precision(fn: Callable[..., torch.Tensor], precision: str, device: torch.device) -> Callable[..., torch.Tensor]:
    """`fn` with its matrix products in `precision` (a resolved one) and a float32 result."""
    if precision == "float32":
        return fn

    def run(*args: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = fn(*args)
        return out.float()

    return run
