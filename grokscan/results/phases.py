"""Phases of a run (Liu et al. 2022, "Towards understanding grokking: an effective theory"), named at
analysis time from the stored step_fit and step_gen: the thresholds are analysis parameters, never part of
a run's identity, so changing them retrains nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd

from grokscan.errors import UserError

PHASES = ("comprehension", "grokking", "memorization", "confusion")
DEFAULT_GAP = 1000  # steps between fit and generalization that separate grokking from comprehension


def phase(step_fit: int | None, step_gen: int | None, gap: int = DEFAULT_GAP) -> str:
    """comprehension: fit and generalized within `gap` steps of fitting (or before); grokking: generalized
    more than `gap` steps after fitting; memorization: fit only; confusion: neither (within the budget)."""
    if step_fit is None:
        return "comprehension" if step_gen is not None else "confusion"
    if step_gen is None:
        return "memorization"
    return "comprehension" if step_gen - step_fit <= gap else "grokking"


def phases(runs: pd.DataFrame, gap: int = DEFAULT_GAP) -> pd.Series:
    """`phase` of every row of a runs table; None for rows whose status is not ok (a diverged or failed
    run's steps say nothing about generalization)."""
    if gap < 0:
        raise UserError(f"gap = {gap!r}: must be a number of steps >= 0")
    fit = pd.to_numeric(runs["step_fit"]).to_numpy(dtype=float, na_value=np.nan)
    gen = pd.to_numeric(runs["step_gen"]).to_numpy(dtype=float, na_value=np.nan)
    has_fit, has_gen = ~np.isnan(fit), ~np.isnan(gen)
    out = np.select(
        [has_gen & (~has_fit | (gen - fit <= gap)), has_gen, has_fit],
        ["comprehension", "grokking", "memorization"],
        "confusion",
    ).astype(object)
    out[(runs["status"] != "ok").to_numpy()] = None
    return pd.Series(out, index=runs.index, name="phase", dtype=object)
