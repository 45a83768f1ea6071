"""The phase rule (grokscan.results.phases): censoring is not a phase."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from grokscan.errors import UserError
from grokscan.results.phases import PHASES, phase, phases


def _runs(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["status", "step_fit", "step_gen", "steps_run"])
    for c in ("step_fit", "step_gen", "steps_run"):
        df[c] = df[c].astype("Int64")
    return df


def test_a_fit_only_run_is_memorization_only_after_a_long_enough_budget():
    # step_fit 300, gap 1000: memorization needs steps_run > 1300 and >= 10 * 300 = 3000.
    runs = _runs([("ok", 300, None, n) for n in (1300, 1301, 2999, 3000, 100_000)])
    assert phases(runs).tolist() == ["undetermined"] * 3 + ["memorization"] * 2
    # Horizon 5 (1,500 steps): 1,301 steps is past the gap but under 5x step_fit.
    assert phases(runs, horizon=5).tolist() == ["undetermined"] * 2 + ["memorization"] * 3
    # Gap 1,500 with horizon 1: only the gap counts.
    assert phases(runs, gap=1500, horizon=1).tolist() == ["undetermined"] * 2 + ["memorization"] * 3
    assert phases(runs, gap=2699, horizon=1).tolist() == ["undetermined"] * 3 + ["memorization"] * 2


def test_table_rule_equals_the_scalar_rule_on_every_combination():
    none = [None]
    rows = [
        ("ok", fit, gen, run)
        for fit, gen, run in itertools.product(
            [*none, 0, 50, 400, 3000], [*none, 0, 60, 1450, 9000], [1000, 5000]
        )
    ]
    rows += [("diverged", 50, None, 500), ("error", None, None, None)]
    for gap, horizon in ((1000, 10.0), (0, 1.0), (500, 3.0)):
        got = phases(_runs(rows), gap, horizon).tolist()
        want = [phase(f, g, gap, steps_run=r, horizon=horizon) if s == "ok" else None for s, f, g, r in rows]
        assert got == want, (gap, horizon)
    assert set(phases(_runs(rows))) - {None} <= set(PHASES)


@pytest.mark.parametrize("gap,horizon,match", [(-1, 10.0, "gap"), (1000, 0.5, "horizon")])
def test_bad_rule_parameters_are_one_user_error(gap, horizon, match):
    with pytest.raises(UserError, match=match):
        phases(_runs([("ok", 1, 2, 3)]), gap, horizon)
