"""`matmul_precision`: how a float32 run's matrix products are computed (forward and backward; the loss,
its softmax and the optimizer stay in the run's dtype).

- None / "float32" (default): IEEE float32 products, the behaviour of every run before this option.
- "tf32": CUDA matmuls on tensor cores with inputs rounded to a 10-bit mantissa, float32 accumulation
  (torch.backends.cuda.matmul.fp32_precision = "tf32"). TF32 is an NVIDIA format: on CPU this changes
  nothing, a tf32 run trains bit-identically to float32 there (it still is its own run, with its own id).
- "bf16": torch.autocast to bfloat16 (7-bit mantissa) around the model's forward, in training and in eval
  (on CPU too); logits are cast back to the run's dtype before the loss.

Why it is part of the run identity: grokking is sensitive to floating-point error. Prieto et al. 2025
("Grokking at the edge of numerical stability") show that rounding in the softmax (softmax collapse) can
stop learning before a run generalizes, and that the same runs with a 16-, 32- or 64-bit softmax grok
differently (their Figure 2; run_main_experiments.sh, --softmax_precision 16/32/64). grokscan keeps the
loss in the run's dtype, so this option changes the products feeding it, not the softmax; but even
last-bit changes move grokking: reordering the default MLP's first-layer sums moved step_gen of two default
runs from 2250 / 2200 to 2450 / 2250. TF32 and bf16 round each product's inputs to a relative ~2^-11 and
~2^-8, far more, so runs of different precisions are different runs (and never share a pack).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from grokscan.config import RunConfig


@contextlib.contextmanager
def matmul_mode(cfg: RunConfig, device: torch.device) -> Iterator[None]:
    """For a pack's training: TF32 CUDA matmuls while a "tf32" run trains (restored after)."""
    if cfg.matmul_precision != "tf32" or device.type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    matmul.fp32_precision = "tf32"
    try:
        yield
    finally:
        matmul.fp32_precision = before


def forward_autocast(cfg: RunConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """Around a model's forward: bfloat16 autocast for a "bf16" run, else nothing."""
    if cfg.matmul_precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
