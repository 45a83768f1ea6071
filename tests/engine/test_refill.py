"""Refill: runs of one shape waiting join a running pack as its members end, each counting its own steps.
Invariant 1 with refill: a run trained alone equals it refilled into a running pack, bit for bit in
float64 on CPU, whatever step the others are at."""

from __future__ import annotations

import pytest
from test_pack_invariance import PARITY, assert_identical, mixed

from grokscan.engine.loop import train_runs
from grokscan.engine.pack import Pack

BASES = {
    "parity-adamw": PARITY,
    "sgd-momentum-mse": dict(
        task="x-y", p=11, width=16, eval_every=10, optimizer="sgd", momentum=0.9, loss="mse"
    ),
    "adam-perp-stablemax": dict(
        task="x*y", p=11, width=9, eval_every=10, optimizer="adam", grad_filter="perp", loss="stablemax"
    ),
    "transformer": dict(task="s3", model="transformer", width=6, heads=2, d_mlp=10, depth=2, eval_every=10),
    "norm-constraint-f64-loss": dict(
        task="x+y", p=11, width=12, eval_every=10, norm_constraint="init", loss_dtype="float64"
    ),
}


def _spy_add(monkeypatch) -> list[tuple[int, int]]:
    """(members already training, members joining) at each Pack.add."""
    joins: list[tuple[int, int]] = []
    add = Pack.add

    def spy(self: Pack, configs) -> None:
        joins.append((len(self.configs), len(configs)))
        add(self, configs)

    monkeypatch.setattr(Pack, "add", spy)
    return joins


@pytest.mark.parametrize("base", BASES.values(), ids=BASES.keys())
def test_refilled_run_equals_alone_float64(monkeypatch, base: dict) -> None:
    configs = mixed({**base, "dtype": "float64"}, n=14)
    joins = _spy_add(monkeypatch)
    refilled = train_runs(configs, pack_size=4)
    assert joins and any(training > 0 for training, _ in joins)  # runs joined packs still training
    assert all(training + joining <= 4 for training, joining in joins)
    assert max(r.pack_size for r in refilled) <= 4
    for cfg, r in zip(configs, refilled, strict=True):
        assert_identical(r, train_runs([cfg])[0])


def test_refill_off_trains_packs_one_after_another(monkeypatch) -> None:
    configs = mixed({**PARITY, "dtype": "float64"}, n=9)
    joins = _spy_add(monkeypatch)
    plain = train_runs(configs, pack_size=4, refill=False)
    assert joins == [] and [r.pack_size for r in plain] == [4, 4, 4, 4, 4, 4, 4, 4, 1]
    for a, b in zip(plain, train_runs(configs, pack_size=4), strict=True):
        assert_identical(a, b)


@pytest.mark.parametrize(
    "extra", [dict(batch_size=32), dict(grad_filter="grokfast")], ids=["minibatch", "grokfast"]
)
def test_packs_that_cannot_refill_still_train_every_run(monkeypatch, extra: dict) -> None:
    """A minibatch's epoch order and Grokfast's first update follow the pack's step: no joining there."""
    configs = mixed({**PARITY, "dtype": "float64", **extra}, n=6)
    joins = _spy_add(monkeypatch)
    results = train_runs(configs, pack_size=4)
    assert joins == [] and [r.pack_size for r in results] == [4, 4, 4, 4, 2, 2]
    for i in (0, 5):
        assert_identical(results[i], train_runs([configs[i]])[0])


def test_a_recording_on_the_pack_step_keeps_runs_from_joining(monkeypatch) -> None:
    from grokscan.engine.recording import Recording, recording

    configs = mixed({**PARITY, "dtype": "float64"}, n=9)
    joins = _spy_add(monkeypatch)
    with recording(Recording(metrics=("layer_norms",), every=2)):
        recorded = train_runs(configs, pack_size=4)
    assert joins == []  # every-k metrics (and weights at listed steps) follow the pack's step
    for a, b in zip(recorded, train_runs(configs, pack_size=4, refill=False), strict=True):
        assert (a.step_fit, a.step_gen, a.steps_run) == (b.step_fit, b.step_gen, b.steps_run)
