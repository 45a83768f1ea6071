"""CUDA checks for benchmarks/gpu_check.sh (skipped without a CUDA device; need no Ray): a real CUDA
out-of-memory splits the pack and the runs still equal training alone; float32 packs on CUDA match each
run alone within a stated tolerance; tf32 and bf16 change CUDA results and still train. (float64 packs
on CUDA against alone and against CPU: test_pack_invariance.py.)"""

from __future__ import annotations

import pytest
import torch
from test_pack_invariance import assert_close

from grokscan.config import RunConfig
from grokscan.engine import memory
from grokscan.engine.loop import train_runs

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
TRANSFORMER = dict(task="x+y", model="transformer", p=113, frac=0.3, steps=30, eval_every=10)


def test_real_cuda_oom_splits_the_pack() -> None:
    """The caching allocator is capped (set_per_process_memory_fraction) at about 6 members' estimate, so
    a pack of 64 raises a real torch.cuda.OutOfMemoryError and is split until its halves fit."""
    configs = [RunConfig(**TRANSFORMER, seed=s, dtype="float64") for s in range(64)]
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    cap = 6 * memory.member_bytes(configs[0]) + torch.cuda.memory_allocated()
    torch.cuda.set_per_process_memory_fraction(cap / total)
    try:
        packed = train_runs(configs, device="cuda", pack_size=64)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert all(r.status == "ok" for r in packed)
    assert 1 <= max(r.pack_size for r in packed) < 64
    for i in (0, 31, 63):
        assert_close(packed[i], train_runs([configs[i]], device="cuda")[0], rtol=1e-9, atol=1e-12)


def test_cuda_float32_pack_matches_alone() -> None:
    """float32 on CUDA: kernels may pick other algorithms by batch size, so pack vs alone agrees to
    rtol 1e-4 / atol 1e-5 over 30 steps (step_fit, step_gen, steps_run exactly)."""
    configs = [RunConfig(**TRANSFORMER, seed=s) for s in range(16)]
    packed = train_runs(configs, device="cuda", pack_size=16)
    for i in (0, 15):
        assert_close(packed[i], train_runs([configs[i]], device="cuda")[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_lower_matmul_precision_on_cuda(precision: str) -> None:
    base = RunConfig(**TRANSFORMER)
    plain, low = train_runs([base, RunConfig(**TRANSFORMER, matmul_precision=precision)], device="cuda")
    assert low.status == "ok" and low.curves["val_loss"] != plain.curves["val_loss"]
    first = abs(low.curves["val_loss"][0] - plain.curves["val_loss"][0]) / plain.curves["val_loss"][0]
    assert first < 0.02
