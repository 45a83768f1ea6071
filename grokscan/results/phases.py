"""Phases of a run (Liu et al. 2022, "Towards understanding grokking: an effective theory"), named at
analysis time from the stored step_fit, step_gen and steps_run: the thresholds are analysis parameters,
never part of a run's identity, so changing them retrains nothing.

A run that fit its training set but never generalized within its budget is right-censored: it may be a
memorizing run or a late grokking one. Liu et al. call it memorization after a 1e5-step budget (their
phase diagrams' compute budget), far past their runs' step_fit; grokscan's default budget, 4,000 steps, is
about 4 times the default run's step_fit (950, README), and in RESULTS.md's frac_scaling two seeds at
frac 0.4, weight decay 1 generalize at 4,200 and 5,900 steps, past the 3,000-step budget of wd_vs_frac,
which named that cell memorization.
So a fit-only run is named:

- memorization: it trained more than `gap` steps after fitting (so it is not comprehension) and at least
  `horizon` times its step_fit (default 10) without generalizing;
- undetermined: otherwise, i.e. ``steps_run - step_fit <= gap`` or ``steps_run < horizon * step_fit``: the
  budget is too short to tell memorization from late grokking.

The horizon of 10 (an order of magnitude past fitting) is grokscan's choice, a floor rather than a proof:
a run may still generalize later. It is an analysis parameter (`phases(..., horizon=)`,
`load_runs(..., horizon=)`), so a stricter rule retrains nothing.

The phases:

- comprehension: generalized within `gap` steps of fitting (or before fitting, or without fitting);
- grokking: generalized more than `gap` steps after fitting;
- undetermined / memorization: fit only (above);
- confusion: neither fit nor generalized within the budget;
- None: the run did not finish ok (a diverged or failed run's steps say nothing about generalization).

step_fit and step_gen are stored at the run's `threshold` (0.99 by default); `grokscan.results.thresholds`
recomputes them from the stored curves at another one, e.g. Liu et al.'s 0.9.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from grokscan.errors import UserError

# Legend and tie order (a tie in a cell goes to the earlier phase).
PHASES = ("comprehension", "grokking", "undetermined", "memorization", "confusion")
DEFAULT_GAP = 1000  # steps between fit and generalization that separate grokking from comprehension
DEFAULT_HORIZON = 10.0  # steps_run / step_fit a fit-only run needs before it is called memorization


def check_rule(gap: int, horizon: float) -> None:
    """Raise a UserError for a negative gap or a horizon below 1."""
    if gap < 0:
        raise UserError(f"gap = {gap!r}: must be a number of steps >= 0")
    if not horizon >= 1:
        raise UserError(f"horizon = {horizon!r}: must be >= 1 (steps_run / step_fit of a memorizing run)")


def phase(
    step_fit: int | None,
    step_gen: int | None,
    gap: int = DEFAULT_GAP,
    *,
    steps_run: int,
    horizon: float = DEFAULT_HORIZON,
) -> str:
    """The phase of one run that finished ok (module doc)."""
    if step_gen is not None:
        return "comprehension" if step_fit is None or step_gen - step_fit <= gap else "grokking"
    if step_fit is None:
        return "confusion"
    long_enough = steps_run - step_fit > gap and steps_run >= horizon * step_fit
    return "memorization" if long_enough else "undetermined"


def phases(runs: pd.DataFrame, gap: int = DEFAULT_GAP, horizon: float = DEFAULT_HORIZON) -> pd.Series:
    """`phase` of every row of a runs table (columns status, step_fit, step_gen, steps_run)."""
    check_rule(gap, horizon)
    fit, gen, run = (
        pd.to_numeric(runs[c]).to_numpy(dtype=float, na_value=np.nan)
        for c in ("step_fit", "step_gen", "steps_run")
    )
    has_fit, has_gen = ~np.isnan(fit), ~np.isnan(gen)
    with np.errstate(invalid="ignore"):
        long_enough = (run - fit > gap) & (run >= horizon * fit)
    out = np.select(
        [has_gen & (~has_fit | (gen - fit <= gap)), has_gen, has_fit & long_enough, has_fit],
        ["comprehension", "grokking", "memorization", "undetermined"],
        "confusion",
    ).astype(object)
    out[(runs["status"] != "ok").to_numpy()] = None
    return pd.Series(out, index=runs.index, name="phase", dtype=object)
