from __future__ import annotations

import math
import re
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from grokscan.errors import UserError
from grokscan.results.analysis import ScalingFit, _neg_loglik, fit_scaling, naive_fit, phase_table


def _runs(rows: list[tuple]) -> pd.DataFrame:
    """Runs table with the store's dtypes from (frac, wd, status, step_fit, step_gen, steps_run, phase)."""
    df = pd.DataFrame(
        rows, columns=["frac", "weight_decay", "status", "step_fit", "step_gen", "steps_run", "phase"]
    )
    for c in ("step_fit", "step_gen", "steps_run"):
        df[c] = df[c].astype("Int64")
    df["censored"] = df["step_gen"].isna()
    return df.sample(frac=1.0, random_state=0)  # the table's order must not matter


N = None
HAND = _runs(
    [
        # (0.3, 0.1): no censoring, step_gen 100..400: KM median = ordinary median = 250.
        (0.3, 0.1, "ok", 50, 100, 1000, "comprehension"),
        (0.3, 0.1, "ok", 50, 200, 1000, "grokking"),
        (0.3, 0.1, "ok", 100, 300, 1000, "grokking"),
        (0.3, 0.1, "ok", 100, 400, 1000, "grokking"),
        # (0.3, 1.0): events at 100, 200, 300; censored at 150 and 400.
        (0.3, 1.0, "ok", 50, 100, 1000, "comprehension"),
        (0.3, 1.0, "ok", 50, N, 150, "undetermined"),
        (0.3, 1.0, "ok", 50, 200, 1000, "grokking"),
        (0.3, 1.0, "ok", 50, 300, 1000, "grokking"),
        (0.3, 1.0, "ok", 50, N, 400, "undetermined"),
        (0.3, 1.0, "diverged", 50, N, 120, N),
        # (0.5, 0.1): unanimous.
        (0.5, 0.1, "ok", 50, 100, 1000, "comprehension"),
        (0.5, 0.1, "ok", 50, 100, 1000, "comprehension"),
        (0.5, 0.1, "diverged", N, N, 80, N),
        # (0.5, 1.0): 2 of 3 never generalize within 1000 steps: "> budget".
        (0.5, 1.0, "ok", 50, 100, 1000, "comprehension"),
        (0.5, 1.0, "ok", 50, N, 1000, "memorization"),
        (0.5, 1.0, "ok", 50, N, 1000, "memorization"),
        # (0.7, 0.1): only a failed run.
        (0.7, 0.1, "error", N, N, N, N),
    ]
)


def _cell(table: pd.DataFrame, frac: float, wd: float) -> pd.Series:
    row = table[(table["frac"] == frac) & (table["weight_decay"] == wd)]
    assert len(row) == 1
    return row.iloc[0]


def test_phase_table_columns_order_and_counts():
    t = phase_table(HAND, "frac", "weight_decay")
    assert list(t.columns) == [
        "frac",
        "weight_decay",
        "n",
        "n_failed",
        "n_generalized",
        "frac_generalized",
        "budget",
        "median_step_gen",
        "step_gen_over_budget",
        "median_step_fit",
        "median_delay",
        "median_delay_ratio",
        "phase",
        "phase_share",
        "mixed",
    ]
    assert list(zip(t["frac"], t["weight_decay"], strict=True)) == [
        (0.3, 0.1),
        (0.3, 1.0),
        (0.5, 0.1),
        (0.5, 1.0),
        (0.7, 0.1),
    ]
    assert t["n"].tolist() == [4, 5, 2, 3, 0]
    assert t["n_failed"].tolist() == [0, 1, 1, 0, 1]
    assert t["n_generalized"].tolist() == [4, 3, 2, 1, 0]
    assert _cell(t, 0.3, 1.0)["frac_generalized"] == pytest.approx(0.6)
    assert _cell(t, 0.3, 1.0)["budget"] == 1000
    assert pd.isna(_cell(t, 0.7, 0.1)["budget"]) and math.isnan(_cell(t, 0.7, 0.1)["frac_generalized"])


def test_km_median_without_censoring_is_the_sample_median():
    t = phase_table(HAND, "frac", "weight_decay")
    assert _cell(t, 0.3, 0.1)["median_step_gen"] == 250.0
    assert _cell(t, 0.5, 0.1)["median_step_gen"] == 100.0
    assert not _cell(t, 0.3, 0.1)["step_gen_over_budget"]


def test_km_median_with_censoring_matches_hand_computation():
    # Times 100(event) 150(cens) 200(event) 300(event) 400(cens):
    # S(100) = 4/5 = 0.8; at 200, 3 at risk: S = 0.8·2/3 = 0.533; at 300, 2 at risk: S = 0.267 <= 0.5.
    # The median is 300, where dropping the censored runs would give 200.
    cell = _cell(phase_table(HAND, "frac", "weight_decay"), 0.3, 1.0)
    assert cell["median_step_gen"] == 300.0
    assert not cell["step_gen_over_budget"]


def test_over_budget_when_more_than_half_censored():
    t = phase_table(HAND, "frac", "weight_decay")
    cell = _cell(t, 0.5, 1.0)
    assert math.isnan(cell["median_step_gen"]) and cell["step_gen_over_budget"]
    empty = _cell(t, 0.7, 0.1)  # no ok run: unknown, not over budget
    assert math.isnan(empty["median_step_gen"]) and not empty["step_gen_over_budget"]


def test_majority_phase_mixed_and_delay():
    t = phase_table(HAND, "frac", "weight_decay")
    a = _cell(t, 0.3, 0.1)
    assert (a["phase"], a["phase_share"], a["mixed"]) == ("grokking", 0.75, True)
    assert a["median_step_fit"] == 75.0
    assert a["median_delay"] == 175.0  # delays 50, 150, 200, 300
    assert a["median_delay_ratio"] == 3.5  # ratios 2, 4, 3, 4
    tie = _cell(t, 0.3, 1.0)  # grokking 2, undetermined 2, comprehension 1: tie goes to grokking
    assert (tie["phase"], tie["phase_share"], tie["mixed"]) == ("grokking", 0.4, True)
    assert tie["median_delay"] == 150.0  # delays 50, 150, 250 of the runs that reached both
    same = _cell(t, 0.5, 0.1)
    assert (same["phase"], same["phase_share"], same["mixed"]) == ("comprehension", 1.0, False)
    assert _cell(t, 0.5, 1.0)["phase"] == "memorization"
    assert pd.isna(_cell(t, 0.7, 0.1)["phase"])


def test_phase_table_one_axis_pools_the_other():
    t = phase_table(HAND, "frac")
    assert list(t.columns[:3]) == ["frac", "n", "n_failed"]
    assert t["frac"].tolist() == [0.3, 0.5, 0.7]
    assert t["n"].tolist() == [9, 5, 0]


def test_phase_table_missing_column():
    with pytest.raises(UserError, match="alpha"):
        phase_table(HAND, "alpha")
    with pytest.raises(UserError, match="phase"):
        phase_table(HAND.drop(columns="phase"), "frac")  # no phase column and no gap to name phases


def test_phase_table_names_phases_with_the_gap():
    bare = HAND.drop(columns="phase")
    # HAND's phases are those of a 100-step gap (delays 50 vs 150..300).
    pd.testing.assert_frame_equal(
        phase_table(bare, "frac", "weight_decay", gap=100), phase_table(HAND, "frac", "weight_decay")
    )
    wide = phase_table(HAND, "frac", "weight_decay", gap=1000)  # the gap replaces the stored phases
    a = _cell(wide, 0.3, 0.1)
    assert (a["phase"], a["phase_share"], a["mixed"]) == ("comprehension", 1.0, False)
    b = _cell(wide, 0.3, 1.0)  # comprehension 3, undetermined 2
    assert (b["phase"], b["phase_share"], b["mixed"]) == ("comprehension", 0.6, True)
    # Fit at 50, censored at 1000: 950 steps after fitting is within a 1000-step gap, so undetermined.
    assert _cell(wide, 0.5, 1.0)["phase"] == "undetermined"
    assert pd.isna(_cell(wide, 0.7, 0.1)["phase"])
    narrow = _cell(phase_table(bare, "frac", "weight_decay", gap=0), 0.5, 0.1)
    assert (narrow["phase"], narrow["phase_share"]) == ("grokking", 1.0)
    assert wide["median_step_gen"].equals(phase_table(HAND, "frac", "weight_decay")["median_step_gen"])
    with pytest.raises(UserError, match="gap"):
        phase_table(bare, "frac", gap=-1)


def _synthetic(seed: int, a=10.0, b=8.0, sigma=0.3, budget=900, per=60) -> pd.DataFrame:
    """log step_gen ~ N(a - b·frac, sigma²) over frac 0.3..0.7; runs past `budget` are censored there."""
    rng = np.random.default_rng(seed)
    frac = np.repeat([0.3, 0.4, 0.5, 0.6, 0.7], per)
    t = np.ceil(np.exp(a - b * frac + sigma * rng.standard_normal(frac.size)))
    gen = pd.Series(np.where(t <= budget, t, np.nan)).astype("Int64")
    return pd.DataFrame(
        {
            "frac": frac,
            "status": "ok",
            "step_gen": gen,
            "steps_run": gen.fillna(budget),
            "censored": gen.isna(),
            "task": "x+y",
        }
    )


@pytest.fixture(scope="module")
def synthetic() -> tuple[pd.DataFrame, ScalingFit]:
    runs = _synthetic(0)
    return runs, fit_scaling(runs, "frac", n_boot=200, seed=0)


def test_fit_scaling_recovers_truth_despite_censoring(synthetic):
    runs, fit = synthetic
    assert 0.25 < fit.n_censored / fit.n < 0.35
    assert (fit.n, fit.method, fit.x) == (300, "lognormal-aft", "frac")
    assert fit.a == pytest.approx(10.0, abs=0.3)
    assert fit.b == pytest.approx(8.0, abs=0.5)
    assert fit.sigma == pytest.approx(0.3, abs=0.05)
    assert fit.a_ci[0] < 10.0 < fit.a_ci[1]
    assert fit.b_ci[0] < 8.0 < fit.b_ci[1]
    assert fit.b_ci[1] - fit.b_ci[0] < 2.0
    assert fit.slowdown_per_minus_0_1 == pytest.approx(math.exp(0.1 * fit.b))


def test_naive_fit_is_biased_low_where_aft_is_not(synthetic):
    runs, fit = synthetic
    _, naive_b = naive_fit(runs)
    aft_error = abs(fit.b - 8.0)
    # Dropping censored runs removes the slowest runs at small frac: the slope looks flatter.
    assert naive_b < 8.0 - aft_error
    assert 8.0 - naive_b > 2 * aft_error


def test_predict_and_x_at_budget_agree(synthetic):
    runs, fit = synthetic
    assert fit.budget == 900
    assert fit.x_at_budget == pytest.approx(fit.x_at(900))
    assert fit.predict([fit.x_at_budget])[0] == pytest.approx(900, rel=1e-9)
    # Truth: exp(10 - 8x) = 900 at x = (10 - ln 900) / 8.
    assert fit.x_at_budget == pytest.approx((10 - math.log(900)) / 8, abs=0.01)
    assert fit.predict([0.5, 0.6]) == pytest.approx(np.exp(fit.a - fit.b * np.array([0.5, 0.6])))
    assert fit_scaling(runs, budget=5000, n_boot=0).x_at_budget == pytest.approx(fit.x_at(5000))


def test_fit_scaling_ignores_failed_runs_and_is_seeded(synthetic):
    runs, fit = synthetic
    junk = runs.head(40).assign(status="diverged", step_gen=pd.NA, steps_run=5)
    noisy = fit_scaling(pd.concat([runs, junk], ignore_index=True), n_boot=200, seed=0)
    assert (noisy.a, noisy.b, noisy.a_ci, noisy.b_ci) == (fit.a, fit.b, fit.a_ci, fit.b_ci)
    assert fit_scaling(runs, n_boot=20, seed=1).b_ci != fit_scaling(runs, n_boot=20, seed=2).b_ci


@pytest.mark.parametrize(
    ("change", "column", "match"),
    [
        (lambda r: r.drop(columns="frac"), "frac", "needs column"),
        (lambda r: r, "task", "numeric"),
        (lambda r: r.assign(frac=0.5), "frac", "2 distinct|at least 2"),
        (lambda r: r.assign(step_gen=pd.array([pd.NA] * len(r), dtype="Int64")), "frac", "generalized"),
    ],
)
def test_fit_scaling_bad_input(synthetic, change, column, match):
    runs, _ = synthetic
    bad = change(runs)
    with pytest.raises(UserError, match=match) as err:
        fit_scaling(bad, column, n_boot=0)
    assert repr(column) in str(err.value) or column in str(err.value)
    with pytest.raises(UserError, match=match):
        naive_fit(bad, column)


def test_band_comes_from_the_same_bootstrap_as_the_cis(synthetic):
    runs, fit = synthetic
    assert fit.boot.shape == (200, 2) and not fit.boot.flags.writeable
    assert np.nanpercentile(fit.boot[:, 1], [2.5, 97.5]).tolist() == list(fit.b_ci)
    grid = np.array([0.3, 0.5, 0.7])
    lo, hi = fit.band(grid)
    assert (lo < fit.predict(grid)).all() and (fit.predict(grid) < hi).all()
    ok = fit.boot[np.isfinite(fit.boot).all(axis=1)]
    assert lo[1] == pytest.approx(np.percentile(np.exp(ok[:, 0] - ok[:, 1] * 0.5), 2.5))
    assert fit_scaling(runs, n_boot=0).band(grid) is None
    assert fit_scaling(runs, n_boot=5).band(grid) is None  # fewer than 10 resamples: no band


def _demo_like(censored: dict[float, list[int | None]]) -> pd.DataFrame:
    """Runs like one weight decay of the default demo: frac -> the step_gen of its 2 seeds (None: censored
    at the 3,000-step budget; others stop 500 steps after generalizing)."""
    rows = [
        (f, 0.3, "ok", 50, g, 3000 if g is None else g + 500, N) for f, gs in censored.items() for g in gs
    ]
    return _runs(rows)


# Every run censored at frac 0.4 and 0.5, half at 0.6: grokscan 0.2 warned "overflow encountered in exp"
# and "invalid value encountered in matmul" here (exp(logpdf - log_ndtr) at z ~ 1e10 in a line search).
USED_TO_WARN = _demo_like({0.4: [N, N], 0.5: [N, N], 0.6: [2400, N], 0.7: [1200, 1400], 0.8: [600, 700]})


def test_fit_scaling_raises_no_numeric_warnings_on_censored_fractions():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_scaling(USED_TO_WARN, "frac", n_boot=200, seed=0)
    # Pinned from the code before the fix (its warnings aside), which agrees to ~1e-15.
    assert fit.a == pytest.approx(12.262798996744248, rel=1e-6)
    assert fit.b == pytest.approx(7.24923269208509, rel=1e-6)
    assert fit.sigma == pytest.approx(0.1057103278338292, rel=1e-6)
    assert fit.b_ci == pytest.approx((6.140315434311407, 8.734269731692473), rel=1e-6)
    assert (fit.n, fit.n_censored, fit.n_boot, fit.n_boot_failed) == (10, 5, 200, 17)


@pytest.mark.parametrize(
    "theta",
    [
        [11.9, 6.9, -23.9],  # sigma ~ 4e-11: z ~ 1e10, where exp(logpdf - log_ndtr) overflowed
        [1e300, -1e300, -1e5],
        [-1e300, 1e300, 1e5],
        [0.0, 1e308, -50.0],
        [np.nan, 0.0, 0.0],
        [np.inf, 0.0, 0.0],
    ],
)
def test_neg_loglik_is_finite_or_inf_without_warnings_at_wild_points(theta):
    x, logt, event = np.array([0.4, 0.6, 0.8]), np.log([3000.0, 2400.0, 600.0]), np.array([False, True, True])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = _neg_loglik(np.array(theta), x, logt, event, np.array([2.0, 1.0, 0.0]))
    assert value == math.inf or math.isfinite(value)
    assert np.isfinite(grad).all()


def test_neg_loglik_gradient_matches_finite_differences_far_in_the_tail():
    # z of the censored run ~ 30 and ~ -30: the inverse Mills ratio from erfcx keeps the gradient exact.
    x, logt, event = (
        np.array([0.4, 0.6, 0.8]),
        np.log([3000.0, 2400.0, 600.0]),
        np.array([False, True, False]),
    )
    for theta in ([0.0, -10.0, -1.0], [20.0, 0.0, -1.0], [8.0, 2.0, 0.5]):
        theta = np.array(theta)
        _, grad = _neg_loglik(theta, x, logt, event, np.ones(3))
        numeric = [
            (
                _neg_loglik(theta + h, x, logt, event, np.ones(3))[0]
                - _neg_loglik(theta - h, x, logt, event, np.ones(3))[0]
            )
            / 2e-6
            for h in np.eye(3) * 1e-6
        ]
        assert grad == pytest.approx(numeric, rel=1e-5, abs=1e-6)


def test_failed_bootstrap_resamples_are_a_count_not_a_warning():
    # Generalized runs at one x only: most resamples are separated (sigma -> 0) or lose the generalized runs.
    runs = _demo_like({0.4: [N, N], 0.5: [N, N], 0.6: [N, N], 0.7: [N, N], 0.8: [600, 700]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_scaling(runs, "frac", n_boot=200, seed=0)
    assert 0 < fit.n_boot_failed < 200
    assert fit.n_boot_failed == int(np.isnan(fit.boot[:, 0]).sum())
    assert fit_scaling(runs, "frac", n_boot=0).n_boot_failed == 0


def test_fit_verb_says_the_bootstrap_failures_once_in_words(tmp_path, capsys):
    from grokscan.cli import main
    from grokscan.config import RunConfig
    from grokscan.result import RunResult
    from grokscan.results.store import Store

    results = []
    for wd, steps in (
        (0.3, USED_TO_WARN),
        (1.0, _demo_like({0.4: [N, 2800], 0.6: [900, 1000], 0.8: [300, 350]})),
    ):
        for seed, row in enumerate(steps.itertuples()):
            gen = None if pd.isna(row.step_gen) else int(row.step_gen)
            config = RunConfig(task="x+y", p=31, frac=row.frac, weight_decay=wd, seed=seed, steps=3000)
            results.append(RunResult(config, "ok", 50, gen, int(row.steps_run), {}, 1.0, "cpu", 1))
    Store(str(tmp_path)).write("demo", results)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["fit", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if "bootstrap resamples" in line.lower()]
    assert len(lines) == 1, captured.out
    assert re.fullmatch(
        r"Bootstrap resamples with no finite fit: \d+ of 200 at weight_decay=0.3(, \d+ of 200 at "
        r"weight_decay=1)? \(no generalized run .*\); the CIs use the rest\.",
        lines[0],
    )
    assert captured.err == ""


def test_analysis_imports_neither_torch_nor_ray():
    code = "import sys, grokscan.results.analysis; print(sorted({'torch', 'ray'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
