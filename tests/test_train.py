"""Training engine: pack invariance, determinism, divergence, stop rules, packing, phases."""

from __future__ import annotations

import math

import pytest
import torch

from grokscan import packsize, train
from grokscan.config import RunConfig
from grokscan.result import CURVE_METRICS, PHASES, RunResult, phase
from grokscan.train import make_packs, pack_key, train_runs

PARITY = dict(task="parity", n_bits=8, k_bits=2, n_samples=None, width=16, eval_every=10)


def _mixed(base: dict, n: int = 9, fracs: tuple[float, float] = (0.5, 0.499)) -> list[RunConfig]:
    """n configs of one pack shape that differ in seed, split_seed, frac, lr, weight_decay, alpha,
    label_noise, warmup, steps and patience."""
    out = []
    for i in range(n):
        out.append(
            RunConfig(
                **base,
                seed=i,
                split_seed=100 + i % 4,
                frac=fracs[i % 2],  # default: same n_train on 256, 128, 121, 49 or 36 rows
                lr=(1e-2, 3e-3, 2e-2)[i % 3],
                weight_decay=(0.0, 1.0, 0.3)[i % 3],
                alpha=(1.0, 1.5, 0.7, 1.0)[i % 4],
                label_noise=(0.0, 0.05, 0.0)[i % 3],
                warmup=(5, 0)[i % 2],
                steps=(60, 50, 60)[i % 3],
                patience=(2, 1)[i % 2],
            )
        )
    assert len({pack_key(c) for c in out}) == 1
    return out


def _same(x: float, y: float) -> bool:
    return x == y or (math.isnan(x) and math.isnan(y))


def _assert_identical(a: RunResult, b: RunResult) -> None:
    """Bit-identical outcome (NaN equals NaN: zero_loss_frac is NaN for the mse loss)."""
    assert a.config == b.config
    assert _outcome(a) == _outcome(b) and a.error == b.error
    assert a.curves.keys() == b.curves.keys()
    for key in a.curves:
        assert len(a.curves[key]) == len(b.curves[key]), key
        assert all(map(_same, a.curves[key], b.curves[key])), key
    assert all(_same(a.final[k], b.final[k]) for k in CURVE_METRICS)


def _outcome(r: RunResult) -> tuple:
    return r.status, r.step_fit, r.step_gen, r.steps_run


def _assert_close(a: RunResult, b: RunResult, rtol: float, atol: float) -> None:
    assert _outcome(a) == _outcome(b)
    for key in ("step", *CURVE_METRICS):
        want = torch.tensor(b.curves[key], dtype=torch.float64)
        torch.testing.assert_close(
            torch.tensor(a.curves[key], dtype=torch.float64),
            want,
            rtol=rtol,
            atol=atol,
            equal_nan=True,
            msg=key,
        )


@pytest.mark.parametrize(
    "base",
    [
        PARITY,
        dict(task="x*y", p=11, width=16, eval_every=10),
        dict(
            task="x-y",
            p=11,
            width=16,
            eval_every=10,
            optimizer="sgd",
            momentum=0.9,
            loss="mse",
            grad_filter="perp",
            activation="gelu",
            depth=2,
        ),
        dict(task="s3", width=16, eval_every=10, optimizer="adam", loss="stablemax", grad_filter="grokfast"),
    ],
    ids=["parity", "x*y", "sgd-mse-perp", "s3-adam-stablemax-grokfast"],
)
def test_pack_invariance_float64(base: dict) -> None:
    """Invariant 1: alone or in a pack of 9, the same run gives bit-identical results (CPU, float64)."""
    configs = _mixed({**base, "dtype": "float64"})
    packed = train_runs(configs)
    assert [r.pack_size for r in packed] == [9] * 9
    for cfg, r in zip(configs, packed, strict=True):
        alone = train_runs([cfg])[0]
        assert alone.pack_size == 1
        _assert_identical(r, alone)
    if base is PARITY:  # members stop at different steps, so the pack really shrinks mid-run
        assert len({r.steps_run for r in packed}) >= 3
        assert any(r.step_fit is not None for r in packed) and any(r.step_fit is None for r in packed)


@pytest.mark.parametrize(
    "base",
    [
        dict(task="parity", n_bits=7, k_bits=2, n_samples=None, width=10, eval_every=10, activation="gelu"),
        dict(
            task="x-y",
            p=7,
            width=9,
            eval_every=10,
            optimizer="adam",
            loss="stablemax",
            grad_filter="grokfast",
        ),
        dict(task="s3", model="transformer", width=6, heads=2, d_mlp=10, depth=2, eval_every=10),
    ],
    ids=["parity-gelu", "adam-stablemax-grokfast", "transformer"],
)
def test_pack_of_64_invariance(base: dict) -> None:
    """The design's pack of 64, with odd widths: past 16 members CPU kernels vectorize the pack's
    hyperparameter columns, and odd per-member sizes put a lone member's tail in scalar code."""
    configs = _mixed({**base, "dtype": "float64"}, n=64)
    packed = train_runs(configs, pack_size=64)
    assert {r.pack_size for r in packed} == {64}
    for i in (0, 1, 17, 30, 63):
        _assert_identical(packed[i], train_runs([configs[i]])[0])


@pytest.mark.parametrize("base", [PARITY, dict(task="x+y", p=11, width=16, eval_every=10)])
def test_pack_invariance_float32(base: dict) -> None:
    configs = _mixed({**base, "dtype": "float32"}, n=8)
    packed = train_runs(configs)
    assert {r.pack_size for r in packed} == {8}
    for cfg, r in zip(configs, packed, strict=True):
        _assert_close(r, train_runs([cfg])[0], rtol=1e-5, atol=1e-6)


def test_pack_invariance_with_chunked_eval(monkeypatch) -> None:
    """Evaluation in uneven chunks of members gives the same results as one chunk."""
    configs = _mixed({**PARITY, "dtype": "float64"}, n=8)
    whole = train_runs(configs)
    rows, widest = 256, 16 * 8
    monkeypatch.setattr(packsize, "EVAL_ELEMENTS", rows * widest * 3)  # chunks of 3, 3, 2 members
    eval_sizes: set[int] = set()
    forward = train.Model.forward

    def spy(self, flat, x):
        if x.shape[1] == rows:
            eval_sizes.add(flat.shape[0])
        return forward(self, flat, x)

    monkeypatch.setattr(train.Model, "forward", spy)
    for a, b in zip(train_runs(configs), whole, strict=True):
        _assert_identical(a, b)
    assert {3, 2} <= eval_sizes and max(eval_sizes) == 3


def test_same_config_twice_is_identical() -> None:
    cfg = RunConfig(**{**PARITY, "steps": 40}, seed=3, dtype="float32", label_noise=0.1)
    _assert_identical(train_runs([cfg])[0], train_runs([cfg])[0])
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
    assert diverged.phase is None
    assert diverged.steps_run < bad.steps
    assert not all(map(math.isfinite, (diverged.final["train_loss"], diverged.final["weight_norm"])))
    without_bad = train_runs(good)
    for r, cfg, ref in zip([results[0], *results[2:]], good, without_bad, strict=True):
        assert r.status == "ok" and r.error is None and r.phase in PHASES
        assert r.steps_run > diverged.steps_run  # they went on training after the divergence
        _assert_identical(r, ref)
        _assert_identical(r, train_runs([cfg])[0])


def test_non_finite_loss_with_finite_parameters() -> None:
    """alpha 1e30 in float32: finite weights, overflowing logits; the run diverges at step 0."""
    base = dict(**PARITY, steps=20, dtype="float32")
    bad, good = RunConfig(**base, alpha=1e30), RunConfig(**base, seed=1)
    results = train_runs([bad, good])
    assert results[0].status == "diverged" and results[0].steps_run == 0
    assert results[0].error == "non-finite loss at step 0"
    assert results[1].status == "ok"
    _assert_identical(results[1], train_runs([good])[0])


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
    assert r.final == {k: curves[k][-1] for k in CURVE_METRICS}


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
    assert last.phase in ("memorization", "confusion")
    assert results[-1].pack_size == 1 and results[0].pack_size == 5


@pytest.mark.parametrize("batch_size", [32, 48])
def test_minibatch_pack_invariance(batch_size: int) -> None:
    configs = _mixed({**PARITY, "dtype": "float64", "batch_size": batch_size}, n=8)
    packed = train_runs(configs)
    assert {r.pack_size for r in packed} == {8}
    for cfg, r in zip(configs, packed, strict=True):
        _assert_identical(r, train_runs([cfg])[0])
    full = train_runs([RunConfig(**{**configs[0].to_dict(), "batch_size": None})])[0]
    assert full.curves["train_loss"] != packed[0].curves["train_loss"]


def test_minibatch_of_all_training_rows_equals_full_batch() -> None:
    """batch_size = n_train: every step sees each training row once (in another order), nothing else."""
    cfg = RunConfig(**{**PARITY, "steps": 40}, seed=1, split_seed=5, label_noise=0.1, dtype="float64")
    full = train_runs([cfg])[0]
    batched = train_runs([RunConfig(**{**cfg.to_dict(), "batch_size": cfg.n_train})])[0]
    _assert_close(batched, full, rtol=1e-9, atol=1e-12)


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
        assert set(r.curves) == {"step", *CURVE_METRICS}


@pytest.mark.parametrize(
    "step_fit,step_gen,gap,want",
    [
        (100, 150, 1000, "comprehension"),
        (100, 100, 0, "comprehension"),
        (100, 50, 0, "comprehension"),  # generalized before fitting
        (100, 1100, 1000, "comprehension"),  # gap boundary: exactly `gap` steps is still comprehension
        (100, 1101, 1000, "grokking"),
        (100, 5000, 1000, "grokking"),
        (100, None, 1000, "memorization"),
        (None, None, 1000, "confusion"),
    ],
)
def test_phase(step_fit, step_gen, gap, want) -> None:
    assert phase(step_fit, step_gen, gap) == want


def test_result_phase_uses_config_gap_and_status() -> None:
    def result(status: str, gap: int) -> RunResult:
        return RunResult(RunConfig(gap=gap), status, 100, 400, 500, {}, 0.0, "cpu", 1)

    assert result("ok", 300).phase == "comprehension"
    assert result("ok", 299).phase == "grokking"
    assert result("diverged", 300).phase is None
    assert not result("ok", 300).censored


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_pack_matches_alone_and_cpu() -> None:
    """On CUDA, kernels may differ with batch size, so pack vs alone is compared in float64 with
    rtol 1e-9 / atol 1e-12 (step_fit, step_gen and steps_run exactly); CUDA vs CPU float64 with
    rtol 1e-6 / atol 1e-8 over 60 steps."""
    configs = _mixed({**PARITY, "dtype": "float64"}, n=8)
    packed = train_runs(configs, device="cuda")
    cpu = train_runs(configs)
    assert {r.pack_size for r in packed} == {8}
    for cfg, r, c in zip(configs, packed, cpu, strict=True):
        assert r.device != "cpu"
        _assert_close(r, train_runs([cfg], device="cuda")[0], rtol=1e-9, atol=1e-12)
        _assert_close(r, c, rtol=1e-6, atol=1e-8)
