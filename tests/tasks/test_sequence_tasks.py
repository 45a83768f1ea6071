"""Sequence tasks (add_digits, repeat_subseq, max_of_seq): labels against independent Python arithmetic,
both data regimes deterministic per seed, held-out examples never trained on, and their config checks."""

from __future__ import annotations

import pytest
import torch

from grokscan.config import RunConfig
from grokscan.errors import UserError
from grokscan.registry import TASKS
from grokscan.tasks.sequence import row_keys

TF = dict(model="transformer", width=8, heads=2)
SMALL = {
    "add_digits": dict(n_digits=3, train_size=60, val_size=40),
    "repeat_subseq": dict(vocab=10, seq_len=6, sub_len=3, train_size=60, val_size=40),
    "max_of_seq": dict(vocab=9, seq_len=5, train_size=60, val_size=40),
}


def _cfg(task: str, **kw) -> RunConfig:
    return RunConfig(task=task, **TF, **{**SMALL[task], **kw})


def _expected_addition(row: list[int], k: int) -> list[int]:
    """The answer of an add_digits row, from Python ints: the sum's k+1 digits, units first."""
    assert row[k] == 10 and row[2 * k + 1] == 11  # "+" and "="
    a = int("".join(map(str, row[:k])))
    b = int("".join(map(str, row[k + 1 : 2 * k + 1])))
    total = str(a + b).zfill(k + 1)
    return [int(d) for d in reversed(total)]


def _expected_repeat(row: list[int], length: int, sub: int) -> list[int]:
    """The answer of a repeat_subseq row: the tokens that followed the cue in the prompt."""
    prompt, repeat = row[:length], row[length:]
    assert len(set(prompt)) == length and len(repeat) == sub - 1
    start = prompt.index(repeat[0])  # the cue's earlier occurrence
    assert prompt[start : start + sub - 1] == repeat  # the teacher-forced tokens are the repeat itself
    return prompt[start + 1 : start + sub]


@pytest.mark.parametrize("regime", ["finite", "infinite"])
def test_add_digits_labels_are_the_sum(regime: str) -> None:
    for k in (1, 3, 5):
        sizes = dict(train_size=20, val_size=30, batch_size=20)
        cfg = RunConfig(task="add_digits", n_digits=k, regime=regime, **sizes, **TF)
        task = TASKS.get("add_digits")
        for data in (task.table(cfg), task.member_data(cfg, task.table(cfg))):
            assert data.x.shape[1] == 3 * k + 2 and data.y.shape[1] == k + 1
            for row, answer in zip(data.x.tolist(), data.y.tolist(), strict=True):
                assert answer == _expected_addition(row, k)
                assert row[2 * k + 2 :] == answer[:k]  # teacher forcing: the answer's first k digits


def test_add_digits_carries() -> None:
    task = TASKS.get("add_digits")
    cfg = _cfg("add_digits")
    x, y = task.sample(cfg, 5000, torch.Generator().manual_seed(3))
    assert (y[:, -1] == 1).any() and (y[:, -1] == 0).any()  # the carry out of the top digit occurs
    assert set(y[:, :-1].unique().tolist()) == set(range(10))


def test_repeat_subseq_labels_continue_the_cue() -> None:
    task = TASKS.get("repeat_subseq")
    cfg = _cfg("repeat_subseq")
    x, y = task.sample(cfg, 500, torch.Generator().manual_seed(1))
    assert x.shape == (500, 6 + 3 - 1) and y.shape == (500, 2)
    starts = set()
    for row, answer in zip(x.tolist(), y.tolist(), strict=True):
        assert answer == _expected_repeat(row, 6, 3)
        starts.add(row[:6].index(row[6]))
    assert starts == set(range(6 - 3 + 1))  # every offset occurs


def test_max_of_seq_labels_are_the_maximum() -> None:
    task = TASKS.get("max_of_seq")
    cfg = _cfg("max_of_seq")
    x, y = task.sample(cfg, 500, torch.Generator().manual_seed(2))
    for row, answer in zip(x.tolist(), y.tolist(), strict=True):
        assert row[0] == 9 and row[-1] == 10  # START, END
        assert answer == [max(row[1:-1])]


@pytest.mark.parametrize("name", list(SMALL))
def test_finite_regime_is_a_function_of_split_seed(name: str) -> None:
    task = TASKS.get(name)
    cfg = _cfg(name, seed=4)
    table = task.table(cfg)
    a = task.member_data(cfg, table)
    b = task.member_data(_cfg(name, seed=9, split_seed=4, weight_decay=0.1), table)
    c = task.member_data(_cfg(name, seed=4, split_seed=5), table)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)  # same split_seed, other init: same data
    assert not torch.equal(a.x[:60], c.x[:60])
    assert torch.equal(a.train_rows, torch.arange(60)) and torch.equal(a.x[60:], table.x)
    train, held = row_keys(a.x[:60]), row_keys(table.x)
    assert len(train.unique()) == 60 and len(held.unique()) == 40  # distinct examples
    assert not torch.isin(train, held).any()  # held-out examples are never trained on
    smaller = task.member_data(_cfg(name, seed=4, train_size=25), table)
    assert torch.equal(smaller.x[:25], a.x[:25])  # a smaller sample is a prefix of a larger one


@pytest.mark.parametrize("name", list(SMALL))
def test_infinite_regime_streams_fresh_batches_from_split_seed(name: str) -> None:
    task = TASKS.get(name)
    cfg = _cfg(name, regime="infinite", batch_size=32)
    assert cfg.train_size is None and cfg.n_train == 32 and task.streams(cfg)
    held = row_keys(task.table(cfg).x)
    batches = [task.fresh_batch(cfg, step) for step in (0, 1, 2)]
    again = task.fresh_batch(_cfg(name, regime="infinite", batch_size=32, seed=7, split_seed=0), 1)
    assert torch.equal(batches[1][0], again[0]) and torch.equal(batches[1][1], again[1])
    assert not torch.equal(batches[1][0], batches[2][0])
    other = task.fresh_batch(_cfg(name, regime="infinite", batch_size=32, split_seed=1), 1)
    assert not torch.equal(batches[1][0], other[0])
    for x, y in batches:
        assert x.shape[0] == y.shape[0] == 32 and not torch.isin(row_keys(x), held).any()
    member = task.member_data(cfg, task.table(cfg))  # the eval's training rows at step 0: batch 0
    assert torch.equal(member.x[:32], batches[0][0]) and torch.equal(member.train_rows, torch.arange(32))


def test_the_held_out_sample_is_fixed_per_task_not_per_run() -> None:
    task = TASKS.get("add_digits")
    a = task.table(_cfg("add_digits", seed=0))
    b = task.table(_cfg("add_digits", seed=3, split_seed=8, regime="infinite"))
    assert torch.equal(a.x, b.x)
    assert torch.equal(task.table(_cfg("add_digits", val_size=10)).x, a.x[:10])


def test_defaults_and_normalization() -> None:
    add = RunConfig(task="add_digits", model="transformer")
    assert (add.n_digits, add.train_size, add.regime, add.val_size) == (5, 700, "finite", 1000)
    assert (add.n_train, add.n_rows, add.batch_size, add.vocab, add.p) == (700, 1000, None, None, None)
    stream = RunConfig(task="add_digits", model="transformer", regime="infinite", train_size=300)
    assert stream.train_size is None and stream.batch_size == 700  # a full step's worth of fresh examples
    rep = RunConfig(task="repeat_subseq", model="transformer", depth=2, d_mlp=0)
    assert (rep.vocab, rep.seq_len, rep.sub_len, rep.train_size) == (32, 12, 6, 512)
    assert RunConfig(task="max_of_seq").train_size == 512
    table_run = RunConfig(task="x+y", n_digits=3, train_size=10, regime="infinite", val_size=5, vocab=3)
    assert (table_run.n_digits, table_run.train_size, table_run.regime, table_run.vocab) == (None,) * 4
    assert table_run.val_size is None
    # A regime x train_size grid collapses the infinite points into one run per other setting.
    streams = [RunConfig(task="add_digits", **TF, regime="infinite", train_size=n) for n in (1, 9)]
    assert len({c.run_id for c in streams}) == 1


@pytest.mark.parametrize(
    "kw,field,allowed",
    [
        (dict(frac=0.3), "frac", "does not apply to task 'add_digits'"),
        (dict(label_noise=0.1), "label_noise", "does not apply"),
        (dict(regime="endless"), "regime", "one of finite, infinite"),
        (dict(train_size=0), "train_size", "must be in [1, 1,000,000]"),
        (dict(n_digits=1, train_size=30, val_size=30), "train_size", "100 distinct examples"),
        (dict(n_digits=12), "n_digits", "1 <= n_digits <= 9"),
        (dict(train_size=60, batch_size=61), "batch_size", "must be in [1, 60]"),
        (dict(model="mlp"), "model", "predicts 4 answer tokens with teacher forcing"),
        (dict(d_mlp=-1), "d_mlp", "0 for attention-only"),
    ],
)
def test_bad_sequence_configs_name_the_field(kw: dict, field: str, allowed: str) -> None:
    base = {**TF, "n_digits": 3, **kw}
    with pytest.raises(UserError, match=rf"'{field}' = .* is invalid: .*{_escape(allowed)}"):
        RunConfig(task="add_digits", **base)


def _escape(text: str) -> str:
    return text.replace("[", r"\[").replace("]", r"\]")


def test_repeat_subseq_and_max_of_seq_checks() -> None:
    with pytest.raises(UserError, match="seq_len <= vocab"):
        RunConfig(task="repeat_subseq", **TF, vocab=5, seq_len=6)
    with pytest.raises(UserError, match="sub_len <= seq_len"):
        RunConfig(task="repeat_subseq", **TF, seq_len=6, sub_len=7)
    with pytest.raises(UserError, match="2 <= vocab"):
        RunConfig(task="max_of_seq", vocab=1)
    assert RunConfig(task="max_of_seq", model="mlp").model == "mlp"  # one answer position: the MLP runs it
