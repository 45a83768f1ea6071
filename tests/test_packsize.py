"""Pack sizing from memory: packsize.member_bytes / pack_bytes / pack_size_for, tune.default_pack_size on
GPU."""

from __future__ import annotations

import pytest
import torch

from grokscan import packsize, train
from grokscan.config import RunConfig

PARITY = dict(task="parity", n_bits=8, k_bits=2, n_samples=None, width=16, eval_every=10)
MEMORY_SHAPES = [
    RunConfig(p=23),
    RunConfig(model="transformer", p=23, width=32, heads=2),
    RunConfig(task="s4", model="transformer", depth=2, width=32, heads=2),
    RunConfig(**PARITY, activation="gelu", depth=2),
    RunConfig(task="digits", optimizer="sgd", loss="mse", grad_filter="grokfast", dtype="float64"),
]


def _saved_bytes(pack: train._Pack, cfg: RunConfig) -> int:
    """Bytes of the distinct storages autograd saves for backward in one training step, parameters aside:
    a lower bound of the step's activation memory."""
    storages: dict[int, int] = {}
    flat = pack.flat.untyped_storage().data_ptr()

    def keep(t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() != flat:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        pack.train_step(1, cfg)
    return sum(storages.values())


@pytest.mark.parametrize("cfg", MEMORY_SHAPES, ids=lambda c: f"{c.task}-{c.model}")
def test_member_bytes_against_a_real_pack(cfg: RunConfig) -> None:
    """The estimate's parts against the tensors of a real pack of one: parameter count (shapes derived
    without loading the task), optimizer state, and the activations autograd saves in a training step."""
    pack = train._Pack([cfg], torch.device("cpu"))
    n_vocab, n_inputs, n_classes = packsize._dims(cfg)
    assert (n_vocab, n_inputs, n_classes) == (pack.model.n_vocab, pack.model.n_inputs, pack.model.n_classes)
    size = pack.flat.element_size()
    state = [pack.flat, pack.opt.m] + ([pack.opt.v] if pack.opt.v is not None else [])
    state_bytes = sum(t.numel() * t.element_size() for t in state)
    saved = _saved_bytes(pack, cfg)
    estimate = packsize.member_bytes(cfg)
    copies = 4 + (cfg.optimizer != "sgd") + (cfg.grad_filter == "grokfast")
    assert state_bytes == pack.flat.numel() * size * (3 if cfg.optimizer != "sgd" else 2)
    activations = estimate - pack.flat.numel() * size * copies - 8 * cfg.n_train - 9 * cfg.n_rows
    train_act = packsize._row_elements(cfg, n_vocab, n_inputs, n_classes)[0] * size * cfg.n_train
    assert activations >= train_act - 1
    assert saved <= train_act <= 4 * saved
    assert state_bytes + saved < estimate < 4 * (state_bytes + saved)


def test_member_bytes_grows_with_width_rows_and_state() -> None:
    base = RunConfig(p=23)
    small = packsize.member_bytes(base)
    assert packsize.member_bytes(RunConfig(p=23, width=128)) > small
    assert packsize.member_bytes(RunConfig(p=23, frac=0.8)) > small  # more training rows
    assert packsize.member_bytes(RunConfig(p=47)) > small  # more rows and classes
    assert packsize.member_bytes(RunConfig(p=23, dtype="float64")) == pytest.approx(2 * small, rel=0.01)
    assert packsize.member_bytes(RunConfig(p=23, optimizer="sgd")) < small  # no second moment
    assert packsize.member_bytes(RunConfig(p=23, grad_filter="grokfast")) > small  # the EMA
    tf = RunConfig(model="transformer", p=23)
    assert packsize.member_bytes(RunConfig(model="transformer", p=23, d_mlp=1024)) > packsize.member_bytes(tf)
    # Minibatches shrink training activations; a large pack's eval chunk is shared, so they show per member.
    full, mini = RunConfig(p=97), RunConfig(p=97, batch_size=256)
    assert packsize.pack_bytes(mini, 512) < packsize.pack_bytes(full, 512)
    per_member = [packsize.pack_bytes(tf, m) / m for m in (1, 64, 1024)]
    assert per_member[0] >= per_member[1] >= per_member[2] > 0


def test_pack_size_for_respects_free_memory_cap_and_headroom() -> None:
    cfg = RunConfig(model="transformer", p=23, width=32, heads=2)
    fits_40 = packsize.pack_bytes(cfg, 40)
    assert packsize.pack_size_for(cfg, 2 * fits_40) == 40  # default headroom 0.5 keeps half free
    assert packsize.pack_size_for(cfg, 2 * fits_40 - 1) == 39
    assert packsize.pack_size_for(cfg, fits_40, headroom=0.0) == 40
    assert packsize.pack_size_for(cfg, 4 * fits_40, headroom=0.75) == 40
    assert packsize.pack_size_for(cfg, 4 * fits_40, headroom=0.5) > 40
    assert packsize.pack_size_for(cfg, 10**15) == 1024
    assert packsize.pack_size_for(cfg, 10**15, cap=7) == 7
    assert packsize.pack_size_for(cfg, 0) == 1  # a lone member always gets its pack
    for m in (1, 5, 300):
        size = packsize.pack_size_for(cfg, packsize.pack_bytes(cfg, m) * 3, headroom=2 / 3)
        assert packsize.pack_bytes(cfg, size) <= packsize.pack_bytes(cfg, m) * 3 * (1 / 3) + 1
        assert size == m
    with pytest.raises(ValueError, match="headroom"):
        packsize.pack_size_for(cfg, 10**9, headroom=1.0)
    with pytest.raises(ValueError, match="cap"):
        packsize.pack_size_for(cfg, 10**9, cap=0)


def test_default_pack_size_on_gpu_fits_the_trial_share(monkeypatch) -> None:
    """Without nvidia-smi (a CPU driver) packs are sized for DEFAULT_GPU_BYTES x the trial's GPU share,
    for the most memory-hungry shape of the sweep."""
    from grokscan import tune

    def no_smi(*args, **kwargs):
        raise FileNotFoundError("nvidia-smi")

    monkeypatch.setattr(tune.subprocess, "run", no_smi)
    mlp, tf = RunConfig(), RunConfig(model="transformer", p=113, frac=0.3)
    assert tune.gpu_free_bytes(0.5) == tune.DEFAULT_GPU_BYTES // 2
    size = tune.default_pack_size(100, 1.0, [mlp, tf, mlp])
    assert size == packsize.pack_size_for(tf, tune.DEFAULT_GPU_BYTES, cap=tune.GPU_PACK_MAX)
    assert 1 < size < packsize.pack_size_for(mlp, tune.DEFAULT_GPU_BYTES, cap=tune.GPU_PACK_MAX)
    assert packsize.pack_bytes(tf, size) <= tune.DEFAULT_GPU_BYTES / 2
    assert tune.default_pack_size(100, 0.25, [tf]) < size
    assert tune.default_pack_size(100, 1.0) == tune.GPU_PACK_SIZE


def test_train_runs_default_pack_size_on_cpu() -> None:
    """Without pack_size, CPU packs hold at most CPU_PACK_MAX runs (larger ones are slower per member)."""
    cap = packsize.CPU_PACK_MAX
    configs = [RunConfig(p=7, width=8, steps=20, eval_every=10, seed=s) for s in range(cap + 3)]
    assert [r.pack_size for r in train.train_runs(configs)] == [cap] * cap + [3] * 3
