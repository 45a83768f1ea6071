"""Sequence runs in packs: alone or packed, bit-identical on CPU (float64 and float32) for each sequence task
in both data regimes; exact-match accuracy, per-position curves, the attention-only transformer, the
infinite regime's training rows, and pack memory estimates for sequence shapes."""

from __future__ import annotations

import pytest
import torch
from test_memory import _saved_bytes
from test_pack_invariance import assert_identical

from grokscan.config import RunConfig
from grokscan.engine import memory
from grokscan.engine.loop import train_runs
from grokscan.engine.models import Model
from grokscan.engine.pack import Pack
from grokscan.engine.packing import pack_key
from grokscan.registry import TASKS

TF = dict(model="transformer", width=8, heads=2, d_mlp=12, eval_every=10)
TASK_SHAPES = {
    "add_digits": dict(task="add_digits", n_digits=2, val_size=40),
    "repeat_subseq": dict(
        task="repeat_subseq", vocab=10, seq_len=6, sub_len=3, val_size=40, depth=2, d_mlp=0
    ),
    "max_of_seq": dict(task="max_of_seq", vocab=9, seq_len=5, val_size=40),
}
REGIMES = {"finite": dict(train_size=48), "infinite": dict(regime="infinite", batch_size=24)}


def sequence_configs(task: str, regime: str, dtype: str, n: int = 6) -> list[RunConfig]:
    """n configs of one pack shape that differ in seed, split_seed (two members share one), lr, weight
    decay, alpha, warmup, steps and patience."""
    out = [
        RunConfig(
            **{**TF, **TASK_SHAPES[task], **REGIMES[regime]},
            dtype=dtype,
            seed=i,
            split_seed=(3, 3, 4, 5, 6, 7)[i % 6],
            lr=(1e-2, 3e-3, 2e-2)[i % 3],
            weight_decay=(0.0, 1.0, 0.3)[i % 3],
            alpha=(1.0, 1.5, 0.7)[i % 3],
            warmup=(5, 0)[i % 2],
            steps=(30, 20, 30)[i % 3],
            patience=(2, 1)[i % 2],
        )
        for i in range(n)
    ]
    assert len({pack_key(c) for c in out}) == 1
    return out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("regime", list(REGIMES))
@pytest.mark.parametrize("task", list(TASK_SHAPES))
def test_sequence_pack_invariance(task: str, regime: str, dtype: str) -> None:
    """Invariant 1 for sequence runs: alone or in a pack of 6 (and after members leave it), bitwise."""
    configs = sequence_configs(task, regime, dtype)
    packed = train_runs(configs, pack_size=6)
    assert {r.pack_size for r in packed} == {6} and len({r.steps_run for r in packed}) >= 2
    for i in (0, 1, 4):
        assert_identical(packed[i], train_runs([configs[i]])[0])


@pytest.mark.parametrize("regime", list(REGIMES))
def test_sequence_pack_of_20_invariance(regime: str) -> None:
    """Past 16 members CPU kernels vectorize the pack's hyperparameter columns: still bitwise (float32)."""
    configs = sequence_configs("add_digits", regime, "float32", n=20)
    packed = train_runs(configs, pack_size=20)
    assert {r.pack_size for r in packed} == {20}
    for i in (0, 7, 19):
        assert_identical(packed[i], train_runs([configs[i]])[0])


def test_chunked_eval_of_sequence_runs_is_invariant(monkeypatch) -> None:
    configs = sequence_configs("add_digits", "finite", "float64")
    whole = train_runs(configs)
    monkeypatch.setattr(memory, "EVAL_ELEMENTS", 88 * 8 * 8 * 4)  # chunks of 4 and 2 members
    assert memory.eval_chunk(configs[0], TASKS.get("add_digits").dims(configs[0])) == 4
    for a, b in zip(train_runs(configs), whole, strict=True):
        assert_identical(a, b)


@pytest.mark.parametrize("task", list(TASK_SHAPES))
def test_position_curves_and_exact_match(task: str) -> None:
    cfg = sequence_configs(task, "finite", "float64")[1]
    (result,) = train_runs([cfg])
    n_out = TASKS.get(task).dims(cfg).n_outputs
    kinds = ("train_loss", "val_loss", "train_acc", "val_acc")
    columns = [f"{kind}_pos{i}" for kind in kinds for i in range(n_out)]
    assert [c for c in result.curves if "_pos" in c] == columns
    for step in range(len(result.curves["step"])):
        for split in ("train", "val"):
            losses = [result.curves[f"{split}_loss_pos{i}"][step] for i in range(n_out)]
            accs = [result.curves[f"{split}_acc_pos{i}"][step] for i in range(n_out)]
            # a row's loss is the mean over its positions, so the mean loss is the positions' mean
            assert result.curves[f"{split}_loss"][step] == pytest.approx(sum(losses) / n_out, rel=1e-9)
            assert result.curves[f"{split}_acc"][step] <= min(accs) + 1e-12  # exact match of the whole answer


def test_exact_match_accuracy_against_an_independent_count() -> None:
    cfg = sequence_configs("add_digits", "finite", "float64")[0]
    pack = Pack([cfg], torch.device("cpu"))
    for step in range(1, 16):
        pack.train_step(step)
    row = dict(zip(pack.columns, pack.evaluate()[0].tolist()[:-1], strict=True))
    logits = pack.model.forward(pack.flat, pack.x)
    whole = (logits.argmax(-1) == pack.labels).all(2)[0]
    assert row["train_acc"] == whole[:48].double().mean().item()
    assert row["val_acc"] == whole[48:].double().mean().item()


def test_infinite_regime_evaluates_the_last_batch_as_training_rows() -> None:
    cfg = sequence_configs("max_of_seq", "infinite", "float64")[0]
    task, pack = TASKS.get("max_of_seq"), Pack([cfg], torch.device("cpu"))
    for step in (1, 2, 3):
        pack.train_step(step)
    x, y = task.fresh_batch(cfg, 3)
    assert torch.equal(pack.x[0, :24], x) and torch.equal(pack.labels[0, :24], y)
    assert torch.equal(pack.x[0, 24:], task.table(cfg).x)
    assert pack.train_mask[0].sum() == 24


def test_attention_only_transformer_has_no_mlp() -> None:
    cfg = RunConfig(**{**TF, **TASK_SHAPES["repeat_subseq"]})
    model = Model(cfg, TASKS.get(cfg.task).dims(cfg))
    assert cfg.d_mlp == 0 and not any("mlp" in name for name in model.spec)
    assert set(model.spec) == {"embed", "pos", "unembed", *(f"l{i}.{p}" for i in (0, 1) for p in "qkvo")}
    assert model.spec["embed"][0] == (10, 8) and model.spec["pos"][0] == (8, 8)  # no "=" token added
    logits = model.forward(model.init_member(0, 1.0, torch.float64)[None], torch.zeros(1, 3, 8).long())
    assert logits.shape == (1, 3, 2, 10)


def test_memory_estimate_of_sequence_packs() -> None:
    """Positive, growing with members, training examples, digits and fresh batches; and above the bytes of
    a real pack's row data (its own tokens, answers and mask)."""
    base = dict(**TF, task="add_digits", n_digits=3)
    small = RunConfig(**base, train_size=100)
    assert 0 < memory.pack_bytes(small, 1) < memory.pack_bytes(small, 4) < memory.pack_bytes(small, 16)
    assert memory.member_bytes(RunConfig(**base, train_size=400)) > memory.member_bytes(small)
    more_digits = RunConfig(**{**base, "n_digits": 5}, train_size=100)
    assert memory.member_bytes(more_digits) > memory.member_bytes(small)
    streamed = [RunConfig(**base, regime="infinite", batch_size=b) for b in (64, 256)]
    assert 0 < memory.member_bytes(streamed[0]) < memory.member_bytes(streamed[1])
    for cfg in (small, streamed[1]):
        pack = Pack([cfg], torch.device("cpu"))
        rows = [pack.x, pack.labels, pack.train_mask, pack.train_idx]
        assert sum(t.numel() * t.element_size() for t in rows) <= TASKS.get(cfg.task).data_bytes(cfg)
    gpu = 16 * 2**30
    assert memory.pack_size_for(small, gpu, cap=4096) > memory.pack_size_for(RunConfig(**base), gpu, cap=4096)


@pytest.mark.parametrize(
    "shape",
    [
        dict(task="add_digits", n_digits=3, train_size=64, width=16, heads=2),
        dict(task="repeat_subseq", depth=2, d_mlp=0, train_size=64, width=16, heads=2),
        dict(task="add_digits", n_digits=3, regime="infinite", batch_size=64, width=16, heads=2),
    ],
    ids=["add_digits", "repeat_subseq-attn-only", "add_digits-infinite"],
)
def test_activation_estimate_against_a_real_sequence_pack(shape: dict) -> None:
    """As test_memory's check for table tasks: the estimated training activations per step bound the
    tensors autograd saves in a real training step from above, within 4x."""
    cfg = RunConfig(model="transformer", **shape)
    pack = Pack([cfg], torch.device("cpu"))
    dims = TASKS.get(cfg.task).dims(cfg)
    train_act = pack.model.arch.row_elements(cfg, dims)[0] * pack.flat.element_size() * cfg.n_train
    saved = _saved_bytes(pack)
    assert saved <= train_act <= 4 * saved
