"""Pack sizing from memory: engine.memory.member_bytes / pack_bytes / pack_size_for for every registered
model, optimizer and gradient filter; the GPU sweep's pack size (sweep.pack_plan) built on them."""

from __future__ import annotations

import itertools

import pytest
import torch

from grokscan.config import RunConfig
from grokscan.engine import memory
from grokscan.engine.loop import train_runs
from grokscan.engine.pack import Pack, task_table
from grokscan.registry import GRAD_FILTERS, MODELS, OPTIMIZERS, TASKS

PARITY = dict(task="parity", n_bits=8, k_bits=2, n_samples=None, width=16, eval_every=10)
MEMORY_SHAPES = [
    RunConfig(p=23),
    RunConfig(model="transformer", p=23, width=32, heads=2),
    RunConfig(task="s4", model="transformer", depth=2, width=32, heads=2),
    RunConfig(**PARITY, activation="gelu", depth=2),
    RunConfig(task="digits", optimizer="sgd", loss="mse", grad_filter="grokfast", dtype="float64"),
    *(
        RunConfig(task="x-y", p=23, model="transformer", depth=2, width=32, heads=2, **options)
        for options in (
            dict(layernorm="post", biases="off", pos_encoding="sinusoidal", input_format="eos_x_op_y"),
            dict(layernorm="pre"),
            dict(layernorm="pre", d_mlp=0),
        )
    ),
]


def _saved_bytes(pack: Pack) -> int:
    """Bytes of the distinct storages autograd saves for backward in one training step, parameters aside:
    a lower bound of the step's activation memory."""
    storages: dict[int, int] = {}
    flat = pack.flat.untyped_storage().data_ptr()

    def keep(t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() != flat:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        pack.train_step(1)
    return sum(storages.values())


@pytest.mark.parametrize("cfg", MEMORY_SHAPES, ids=lambda c: f"{c.task}-{c.model}-{c.layernorm}-{c.d_mlp}")
def test_member_bytes_against_a_real_pack(cfg: RunConfig) -> None:
    """The estimate's parts against the tensors of a real pack of one: parameter count (shapes derived
    without loading the task), optimizer state, and the activations autograd saves in a training step."""
    pack = Pack([cfg], torch.device("cpu"))
    dims, data = TASKS.get(cfg.task).dims(cfg), task_table(cfg)
    assert (dims.n_vocab, dims.n_inputs, dims.n_classes) == (data.n_vocab, data.x.shape[1], data.n_classes)
    assert (dims.n_vocab, dims.n_inputs, dims.n_classes) == (
        pack.model.n_vocab,
        pack.model.n_inputs,
        pack.model.n_classes,
    )
    size = pack.flat.element_size()
    saved = _saved_bytes(pack)  # SGD's momentum buffer exists from the first step on
    state = [pack.flat, pack.opt.state["m"]] + ([pack.opt.state["v"]] if "v" in pack.opt.state else [])
    state_bytes = sum(t.numel() * t.element_size() for t in state)
    estimate = memory.member_bytes(cfg)
    copies = 4 + (cfg.optimizer != "sgd") + (cfg.grad_filter == "grokfast")
    assert state_bytes == pack.flat.numel() * size * (3 if cfg.optimizer != "sgd" else 2)
    activations = estimate - pack.flat.numel() * size * copies - 8 * cfg.n_train - 9 * cfg.n_rows
    train_act = pack.model.arch.row_elements(cfg, dims)[0] * size * cfg.n_train
    assert activations >= train_act - 1
    assert saved <= train_act <= 4 * saved
    assert state_bytes + saved < estimate < 4 * (state_bytes + saved)


def test_member_bytes_grows_with_width_rows_and_state() -> None:
    base = RunConfig(p=23)
    small = memory.member_bytes(base)
    assert memory.member_bytes(RunConfig(p=23, width=128)) > small
    assert memory.member_bytes(RunConfig(p=23, frac=0.8)) > small  # more training rows
    assert memory.member_bytes(RunConfig(p=47)) > small  # more rows and classes
    assert memory.member_bytes(RunConfig(p=23, dtype="float64")) == pytest.approx(2 * small, rel=0.01)
    assert memory.member_bytes(RunConfig(p=23, optimizer="sgd")) < small  # no second moment
    assert memory.member_bytes(RunConfig(p=23, grad_filter="grokfast")) > small  # the EMA
    tf = RunConfig(model="transformer", p=23)
    assert memory.member_bytes(RunConfig(model="transformer", p=23, d_mlp=1024)) > memory.member_bytes(tf)
    # Minibatches shrink training activations; a large pack's eval chunk is shared, so they show per member.
    full, mini = RunConfig(p=97), RunConfig(p=97, batch_size=256)
    assert memory.pack_bytes(mini, 512) < memory.pack_bytes(full, 512)
    per_member = [memory.pack_bytes(tf, m) / m for m in (1, 64, 1024)]
    assert per_member[0] >= per_member[1] >= per_member[2] > 0


@pytest.mark.parametrize(
    "model,optimizer,grad_filter",
    list(itertools.product(MODELS.names(), OPTIMIZERS.names(), GRAD_FILTERS.names())),
)
def test_pack_bytes_for_every_model_optimizer_and_filter(model: str, optimizer: str, grad_filter: str):
    """Every registered combination has an estimate (its entries give state copies and activation sizes),
    positive and strictly increasing in the pack's members."""
    task = dict(task="xor_cluster", n_samples=40, dim=8) if model == "relu2" else dict(p=11)  # 2 classes
    cfg = RunConfig(**task, model=model, optimizer=optimizer, grad_filter=grad_filter)
    sizes = [memory.pack_bytes(cfg, m) for m in (1, 2, 8, 64, 1024)]
    assert sizes[0] > 0
    assert all(a < b for a, b in itertools.pairwise(sizes)), sizes
    assert memory.member_bytes(cfg) == sizes[0]


def test_pack_size_for_respects_free_memory_cap_and_headroom() -> None:
    cfg = RunConfig(model="transformer", p=23, width=32, heads=2)
    fits_40 = memory.pack_bytes(cfg, 40)
    assert memory.pack_size_for(cfg, 2 * fits_40) == 40  # default headroom 0.5 keeps half free
    assert memory.pack_size_for(cfg, 2 * fits_40 - 1) == 39
    assert memory.pack_size_for(cfg, fits_40, headroom=0.0) == 40
    assert memory.pack_size_for(cfg, 4 * fits_40, headroom=0.75) == 40
    assert memory.pack_size_for(cfg, 4 * fits_40, headroom=0.5) > 40
    assert memory.pack_size_for(cfg, 10**15) == 1024
    assert memory.pack_size_for(cfg, 10**15, cap=7) == 7
    assert memory.pack_size_for(cfg, 0) == 1  # a lone member always gets its pack
    for m in (1, 5, 300):
        size = memory.pack_size_for(cfg, memory.pack_bytes(cfg, m) * 3, headroom=2 / 3)
        assert memory.pack_bytes(cfg, size) <= memory.pack_bytes(cfg, m) * 3 * (1 / 3) + 1
        assert size == m
    with pytest.raises(ValueError, match="headroom"):
        memory.pack_size_for(cfg, 10**9, headroom=1.0)
    with pytest.raises(ValueError, match="cap"):
        memory.pack_size_for(cfg, 10**9, cap=0)


def test_default_pack_size_on_cuda_reads_the_device(monkeypatch) -> None:
    """On CUDA the pack size comes from torch.cuda.mem_get_info of the device it trains on (mocked here),
    capped at the process's share of the device's total, for the most memory-hungry shape."""
    asked: list[torch.device] = []

    def mem_get_info(device):
        asked.append(device)
        return 30 * 2**30, 80 * 2**30  # free, total

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    mlp, tf = RunConfig(), RunConfig(model="transformer", p=113, frac=0.3)
    dev = torch.device("cuda", 1)
    size = memory.default_pack_size([mlp, tf, mlp], dev)
    assert asked == [dev]
    assert size == memory.pack_size_for(tf, 30 * 2**30) < memory.pack_size_for(mlp, 30 * 2**30)
    assert memory.pack_bytes(tf, size) <= 15 * 2**30 < memory.pack_bytes(tf, size + 1)  # 50% headroom
    quarter = memory.default_pack_size([tf], dev, share=0.25)  # 20 GiB of the 80 are this trial's
    assert quarter == memory.pack_size_for(tf, 20 * 2**30) < size
    assert memory.default_pack_size([tf], torch.device("cpu")) == memory.CPU_PACK_MAX


def test_gpu_sweeps_plan_trials_without_asking_the_driver_for_gpus() -> None:
    """The driver plans GPU trials of up to GPU_PACK_MAX runs of a shape; it queries no GPU (the trial
    sizes its packs), so a CPU head node plans the same trials as a GPU machine."""
    from grokscan.sweep import pack_plan

    assert not hasattr(pack_plan, "subprocess") and not hasattr(pack_plan, "DEFAULT_GPU_BYTES")
    configs = [RunConfig(seed=s) for s in range(3000)]
    assert pack_plan.default_pack_size(configs, 0.25, cpu_slots=1) == pack_plan.GPU_PACK_MAX
    assert [len(p) for p in pack_plan.plan_packs(configs, pack_plan.GPU_PACK_MAX)] == [1024, 1024, 952]


def test_train_runs_default_pack_size_on_cpu() -> None:
    """Without pack_size, CPU packs hold at most CPU_PACK_MAX runs (larger ones are slower per member)."""
    cap = memory.CPU_PACK_MAX
    configs = [RunConfig(p=7, width=8, steps=20, eval_every=10, seed=s) for s in range(cap + 3)]
    assert [r.pack_size for r in train_runs(configs)] == [cap] * cap + [3] * 3
