"""Training loop: determinism, divergence, stop rules, packing, input order, and the phases named from a
run's step_fit / step_gen at analysis time."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from test_pack_invariance import PARITY, assert_close, assert_identical, columns

from grokscan.config import RunConfig
from grokscan.engine.loop import train_runs
from grokscan.engine.packing import make_packs, pack_key
from grokscan.result import RunResult
from grokscan.results.phases import PHASES, phase, phases


def _phases(results: list[RunResult], gap: int = 1000) -> list[str | None]:
    """The phase of each run as the analysis names it (None for a run whose status is not ok)."""
    keys = ("status", "step_fit", "step_gen", "steps_run")
    rows = [{k: getattr(r, k) for k in keys} for r in results]
    return phases(pd.DataFrame(rows), gap).tolist()


def test_same_config_twice_is_identical() -> None:
    cfg = RunConfig(**{**PARITY, "steps": 40}, seed=3, dtype="float32", label_noise=0.1)
    assert_identical(train_runs([cfg])[0], train_runs([cfg])[0])
    other = train_runs([RunConfig(**{**PARITY, "steps": 40}, seed=4, dtype="float32", label_noise=0.1)])[0]
    assert other.curves["train_loss"] != train_runs([cfg])[0].curves["train_loss"]


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_diverged_member_does_not_affect_pack(optimizer: str) -> None:
    """Invariant 5: weight decay 1 at lr 1e6 multiplies the weights by about -1e6 per step (overflow)."""
    base = dict(**PARITY, steps=60, optimizer=optimizer, dtype="float64")
    good = [RunConfig(**base, seed=s, lr=1e-2 if optimizer == "adamw" else 0.1) for s in range(3)]
    bad = RunConfig(**base, seed=7, lr=1e6, weight_decay=1.0, warmup=0)
    seen: list[RunResult] = []
    results = train_runs([good[0], bad, *good[1:]], on_finished=seen.extend)
    assert {r.pack_size for r in results} == {4}
    assert len(seen) == 4 and {id(r) for r in seen} == {id(r) for r in results}
    diverged = results[1]
    assert diverged.status == "diverged"
    assert (
        diverged.error and "non-finite" in diverged.error and f"step {diverged.steps_run}" in diverged.error
    )
    assert _phases([diverged]) == [None]
    assert diverged.steps_run < bad.steps
    assert not all(map(math.isfinite, (diverged.final["train_loss"], diverged.final["weight_norm"])))
    without_bad = train_runs(good)
    for r, cfg, ref in zip([results[0], *results[2:]], good, without_bad, strict=True):
        assert r.status == "ok" and r.error is None and _phases([r])[0] in PHASES
        assert r.steps_run > diverged.steps_run  # they went on training after the divergence
        assert_identical(r, ref)
        assert_identical(r, train_runs([cfg])[0])


def test_non_finite_loss_with_finite_parameters() -> None:
    """alpha 1e30 in float32: finite weights, overflowing logits; the run diverges at step 0."""
    base = dict(**PARITY, steps=20, dtype="float32")
    bad, good = RunConfig(**base, alpha=1e30), RunConfig(**base, seed=1)
    results = train_runs([bad, good])
    assert results[0].status == "diverged" and results[0].steps_run == 0
    assert results[0].error == "non-finite loss at step 0"
    assert results[1].status == "ok"
    assert_identical(results[1], train_runs([good])[0])


def _check_stop_rule(r: RunResult) -> None:
    """step_fit/step_gen/steps_run recomputed from the curves by the documented rules."""
    cfg, curves = r.config, r.curves
    steps = curves["step"]
    assert steps == list(range(0, r.steps_run + 1, cfg.eval_every))
    fit = [s for s, a in zip(steps, curves["train_acc"], strict=True) if a >= cfg.threshold]
    gen = [s for s, a in zip(steps, curves["val_acc"], strict=True) if a >= cfg.threshold]
    assert r.step_fit == (fit[0] if fit else None)
    assert r.step_gen == (gen[0] if gen else None)
    assert r.censored == (r.step_gen is None)
    both = [
        a >= cfg.threshold and v >= cfg.threshold
        for a, v in zip(curves["train_acc"], curves["val_acc"], strict=True)
    ]
    stop = next(
        (k for k in range(cfg.patience - 1, len(both)) if all(both[k - cfg.patience + 1 : k + 1])), None
    )
    if stop is None:
        assert r.steps_run == cfg.steps
    else:
        assert r.steps_run == steps[stop]
    assert r.final == {k: curves[k][-1] for k in columns(cfg)}


def test_early_stop_and_censoring() -> None:
    base = dict(**PARITY, steps=200, dtype="float32", lr=1e-2, weight_decay=1.0)
    stoppers = [RunConfig(**base, seed=s, patience=pat) for s, pat in [(0, 1), (0, 3), (1, 2), (2, 2)]]
    picky = RunConfig(**base, seed=0, patience=2, threshold=1.0)
    censored = RunConfig(task="x+y", p=11, width=16, eval_every=10, steps=40, dtype="float32")
    results = train_runs([*stoppers, picky, censored])
    for r in results:
        assert r.status == "ok"
        _check_stop_rule(r)
    for r in results[:4]:
        assert r.steps_run < r.config.steps and r.step_fit is not None and r.step_gen is not None
        assert r.step_fit % 10 == 0 and r.step_gen % 10 == 0
        assert r.steps_run >= max(r.step_fit, r.step_gen) + 10 * (r.config.patience - 1)
    assert results[1].steps_run >= results[0].steps_run + 20  # same run, patience 3 instead of 1
    last = results[-1]
    assert last.step_gen is None and last.censored and last.steps_run == last.config.steps
    assert phase(last.step_fit, last.step_gen, steps_run=last.steps_run) in ("undetermined", "confusion")
    assert results[-1].pack_size == 1 and results[0].pack_size == 5


def test_minibatch_of_all_training_rows_equals_full_batch() -> None:
    """batch_size = n_train: every step sees each training row once (in another order), nothing else."""
    cfg = RunConfig(**{**PARITY, "steps": 40}, seed=1, split_seed=5, label_noise=0.1, dtype="float64")
    full = train_runs([cfg])[0]
    batched = train_runs([RunConfig(**{**cfg.to_dict(), "batch_size": cfg.n_train})])[0]
    assert_close(batched, full, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("depth", [1, 2])
def test_transformer_trains(depth: int) -> None:
    cfg = RunConfig(
        task="x+y",
        p=7,
        model="transformer",
        width=16,
        heads=2,
        d_mlp=32,
        depth=depth,
        lr=1e-2,
        warmup=0,
        steps=30,
        eval_every=10,
        dtype="float32",
    )
    (r,) = train_runs([cfg])
    assert r.status == "ok" and r.steps_run == 30
    losses = r.curves["train_loss"]
    assert all(map(math.isfinite, losses))
    assert losses[-1] < 0.8 * losses[0]
    assert r.curves["train_acc"][-1] > r.curves["train_acc"][0]


def test_make_packs_groups_and_splits() -> None:
    a = dict(task="x+y", p=7)
    b = dict(task="x+y", p=11)
    configs = [
        RunConfig(**a, seed=0),
        RunConfig(**b, seed=0),
        RunConfig(**a, seed=1, lr=0.1, weight_decay=0.0, alpha=2.0),
        RunConfig(**a, seed=2, label_noise=0.1, split_seed=9),
        RunConfig(**b, seed=1),
        RunConfig(**a, seed=3, frac=0.3),  # other n_train: other pack
        RunConfig(**a, seed=4),
        RunConfig(**a, seed=5, width=16),  # other shape: other pack
    ]
    assert pack_key(configs[0]) == pack_key(configs[2]) == pack_key(configs[3])
    assert pack_key(configs[0]) != pack_key(configs[5]) != pack_key(configs[7])
    assert make_packs(configs, 2) == [[0, 2], [3, 6], [1, 4], [5], [7]]
    assert make_packs(configs, 64) == [[0, 2, 3, 6], [1, 4], [5], [7]]
    assert make_packs(configs, 1) == [[i] for i in [0, 2, 3, 6, 1, 4, 5, 7]]


def test_train_runs_keeps_input_order() -> None:
    a = dict(task="x+y", p=7, width=8, steps=20, eval_every=10)
    b = dict(task="s3", width=8, steps=10, eval_every=10)
    configs = [
        RunConfig(**a, seed=0),
        RunConfig(**b),
        RunConfig(**a, seed=1),
        RunConfig(**a, seed=2),
        RunConfig(**b, seed=3),
    ]
    seen: list[RunResult] = []
    threads = torch.get_num_threads()
    results = train_runs(configs, pack_size=2, on_finished=seen.extend)
    assert torch.get_num_threads() == threads
    assert [r.config for r in results] == configs
    assert [r.pack_size for r in results] == [2, 2, 2, 1, 2]
    assert [r.steps_run for r in results] == [20, 10, 20, 20, 10]
    assert sorted(map(id, seen)) == sorted(map(id, results))
    for r in results:
        assert r.device == "cpu" and r.wall_s >= 0 and r.run_id == r.config.run_id
        assert set(r.curves) == {"step", *columns(r.config)}


@pytest.mark.parametrize(
    "step_fit,step_gen,gap,steps_run,want",
    [
        (100, 150, 1000, 200, "comprehension"),
        (100, 100, 0, 200, "comprehension"),
        (100, 50, 0, 200, "comprehension"),  # generalized before fitting
        (100, 1100, 1000, 1200, "comprehension"),  # gap boundary: exactly `gap` steps is still comprehension
        (100, 1101, 1000, 1200, "grokking"),
        (100, 5000, 1000, 5100, "grokking"),
        (100, None, 1000, 1101, "memorization"),  # > gap after fitting and >= 10x step_fit
        (100, None, 1000, 1100, "undetermined"),  # exactly `gap` after fitting: could still comprehend
        (500, None, 1000, 4999, "undetermined"),  # < 10x step_fit: could still grok late
        (None, None, 1000, 4000, "confusion"),
    ],
)
def test_phase(step_fit, step_gen, gap, steps_run, want) -> None:
    assert phase(step_fit, step_gen, gap, steps_run=steps_run) == want


def test_result_phase_uses_analysis_gap_and_status() -> None:
    """The gap is an analysis parameter (no RunConfig field); a run that did not end ok has no phase."""

    def result(status: str) -> RunResult:
        return RunResult(RunConfig(), status, 100, 400, 500, {}, 0.0, "cpu", 1)

    assert _phases([result("ok")], gap=300) == ["comprehension"]
    assert _phases([result("ok")], gap=299) == ["grokking"]
    assert _phases([result("diverged")], gap=300) == [None]
    assert not result("ok").censored
