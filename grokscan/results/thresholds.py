"""step_fit and step_gen at an analysis threshold, recomputed from the stored curves.

A run stores step_fit / step_gen at its own `threshold` field (0.99 by default); Liu et al. 2022 name
phases at accuracy 0.9. Both are first evaluated steps, so at another threshold t they are the first curve
step whose train_acc (val_acc) is >= t, as the training loop computes them: only evals with finite losses
count (a diverged run's last eval does not). A threshold above a run's own is refused: the run stopped
early once both accuracies had passed its own threshold for `patience` evals, so whether it would have
reached the higher one is not in its curves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from grokscan.errors import UserError


def check_threshold(threshold: float) -> None:
    """Raise a UserError unless 0 < threshold <= 1."""
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold <= 1:
        raise UserError(f"threshold = {threshold!r}: must be an accuracy in (0, 1], e.g. 0.9 (Liu et al.)")


def first_steps(curves: pd.DataFrame, threshold: float, keys: list[str]) -> pd.DataFrame:
    """step_fit and step_gen (nullable Int64) at `threshold` of each run of a curves table (columns `keys`,
    step, train_acc, val_acc, train_loss, val_loss): one row per run that reached either, columns `keys`,
    step_fit, step_gen."""
    check_threshold(threshold)
    if not {"step", "train_acc", "val_acc", "train_loss", "val_loss"} <= set(curves.columns):
        curves = pd.DataFrame(columns=[*keys, "step", "train_acc", "val_acc", "train_loss", "val_loss"])
    ok = curves[np.isfinite(curves[["train_loss", "val_loss"]].to_numpy(float)).all(axis=1)]
    firsts = [
        ok[ok[acc].to_numpy(float) >= threshold].groupby(keys, as_index=False)["step"].min()
        for acc in ("train_acc", "val_acc")
    ]
    fit, gen = (f.rename(columns={"step": c}) for f, c in zip(firsts, ("step_fit", "step_gen"), strict=True))
    out = fit.merge(gen, on=keys, how="outer")
    return out.astype({"step_fit": "Int64", "step_gen": "Int64"})


def at_threshold(runs: pd.DataFrame, curves: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """A copy of a runs table with step_fit, step_gen and censored at `threshold`, from `curves` (the runs'
    stored curves, `grokscan.results.store.load_curves`). Runs without curves (failed runs) keep null steps.

    Raises:
        UserError: a threshold outside (0, 1] or above a run's own `threshold` field.
    """
    check_threshold(threshold)
    trained = runs["threshold"].dropna()
    if len(trained) and threshold > (own := trained.min()):
        raise UserError(
            f"threshold = {threshold!r}: above {own:g}, the threshold runs were trained to (they stop "
            f"early once it is reached, so their curves cannot tell); use a threshold <= {own:g}"
        )
    keys = [k for k in ("sweep", "run_id") if k in runs and k in curves]
    firsts = first_steps(curves, threshold, keys)
    out = runs.copy()
    if firsts.empty:  # nothing stored, or only failed runs (they have no curves)
        steps = pd.DataFrame({"step_fit": [pd.NA] * len(runs), "step_gen": [pd.NA] * len(runs)})
    else:
        steps = runs[keys].merge(firsts, on=keys, how="left")
    for c in ("step_fit", "step_gen"):
        out[c] = pd.array(steps[c].to_numpy(), dtype="Int64")
    out["censored"] = out["step_gen"].isna().to_numpy()
    return out
