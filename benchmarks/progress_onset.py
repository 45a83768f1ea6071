"""RESULTS.md section 7's numbers, computed from a results directory of `search_spaces/progress_measures.py`:
when each progress measure starts to move, against validation accuracy. Not a speed benchmark.

    grokscan run search_spaces/progress_measures.py --storage DIR
    python benchmarks/progress_onset.py DIR [--sweep progress_measures] [--at 500]

Prints, per (weight decay, seed): step_fit, step_gen (or "never" with the final val_acc), and the onsets of
val_acc, fourier_top_share, fourier_gini and val_restricted_loss: the first eval at which a curve has
covered 10% / 50% of its way from its step-0 value to its extreme over the run (max for accuracy, top share
and Gini; min for the restricted loss). Then, per run: how many steps each measure's onsets lead val_acc's,
the values at step 0 and at `--at`, the final values, fourier_n90 at start and end, and the training
excluded loss's largest rise (from its lowest value so far to the highest after it) and its final value.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import pandas as pd

from grokscan.results.store import load_curves, load_runs

SHARES = (0.1, 0.5)
# column, label in the table, +1: moves towards its max, -1: towards its min
MEASURES = (
    ("val_acc", "val_acc", +1),
    ("fourier_top_share", "top share", +1),
    ("fourier_gini", "Gini", +1),
    ("val_restricted_loss", "val restricted loss", -1),
)


def onset(steps, values, share: float, direction: int) -> int | None:
    """First step at which `values` has covered `share` of its way from its first value to its extreme
    (max for direction +1, min for -1). NaN evals (a metric not computed there) are skipped; None when the
    curve never leaves its first value or has none."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=float)
    keep = ~np.isnan(values)
    steps, moved = steps[keep], direction * (values[keep] - values[keep][:1])
    if moved.size == 0 or moved.max() <= 0:
        return None
    return int(steps[np.argmax(moved >= share * moved.max())])


def largest_rise(steps, values) -> tuple[int, float, int, float] | None:
    """(trough step, trough value, peak step, peak value) of the largest increase of `values` over its lowest
    value so far; None when it never rises."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=float)
    keep = ~np.isnan(values)
    steps, values = steps[keep], values[keep]
    if values.size < 2:
        return None
    low = np.minimum.accumulate(values)
    peak = int(np.argmax(values - low))
    if values[peak] - low[peak] <= 0:
        return None
    trough = int(np.argmin(values[: peak + 1]))
    return int(steps[trough]), float(values[trough]), int(steps[peak]), float(values[peak])


@dataclass(frozen=True)
class Run:
    weight_decay: float
    seed: int
    runs_row: pd.Series
    curve: pd.DataFrame  # this run's evals, sorted by step


def load(path: str, sweep: str) -> list[Run]:
    runs, curves = load_runs(path, sweep=sweep), load_curves(path, sweep=sweep)
    if runs.empty:
        raise SystemExit(f"no runs of sweep {sweep!r} under {path}")
    runs = runs.sort_values(["weight_decay", "seed"], ascending=[False, True])
    by_id = {rid: frame.sort_values("step") for rid, frame in curves.groupby("run_id")}
    return [Run(float(r.weight_decay), int(r.seed), r, by_id[r.run_id]) for _, r in runs.iterrows()]


def onsets(run: Run) -> dict[str, tuple[int | None, ...]]:
    c = run.curve
    return {col: tuple(onset(c.step, c[col], q, d) for q in SHARES) for col, _, d in MEASURES}


def _n(x) -> str:
    return "-" if x is None or pd.isna(x) else f"{int(x):,}"


def _g(x) -> str:
    return f"{x:g}"


def table(runs: list[Run]) -> str:
    pct = " / ".join(f"{q:.0%}" for q in SHARES)
    head = ["weight decay, seed", "step_fit", "step_gen", *(f"{label} {pct}" for _, label, _ in MEASURES)]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    for run in runs:
        r, on = run.runs_row, onsets(run)
        gen = f"never (val_acc {r.final_val_acc:.3f} at {int(r.steps_run):,})"
        gen = gen if pd.isna(r.step_gen) else _n(r.step_gen)
        cells = [f"{_g(run.weight_decay)}, {run.seed}", _n(r.step_fit), gen]
        cells += [" / ".join(_n(s) for s in on[col]) for col, _, _ in MEASURES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _at(curve: pd.DataFrame, column: str, step: int) -> float:
    rows = curve[curve.step == step]
    return float(rows[column].iloc[0]) if len(rows) else float("nan")


def _last(curve: pd.DataFrame, column: str) -> tuple[int, float]:
    values = curve[["step", column]].dropna()
    return int(values.step.iloc[-1]), float(values[column].iloc[-1])


def leads(run: Run, column: str) -> list[int | None]:
    """Steps by which `column`'s onsets come before val_acc's, one per share (negative: after)."""
    on = onsets(run)
    return [None if a is None or m is None else a - m for a, m in zip(on["val_acc"], on[column], strict=True)]


def lead_ranges(runs: list[Run]) -> str:
    parts = []
    for col, label, _ in MEASURES[1:]:
        known = [x for run in runs for x in leads(run, col) if x is not None]
        parts.append(f"{label} {_n(min(known, default=None))} to {_n(max(known, default=None))}")
    return "leads over val_acc's onsets, all runs and shares (steps): " + ", ".join(parts)


def details(run: Run, at: int) -> list[str]:
    c = run.curve
    lines = [f"weight decay {_g(run.weight_decay)}, seed {run.seed}:"]
    for col, label, _ in MEASURES[1:]:
        lines.append(
            f"  {label} onsets lead val_acc's by " + " / ".join(_n(x) for x in leads(run, col)) + " steps"
        )
    first = int(c.step.iloc[0])
    cols = ("val_acc", "fourier_top_share", "fourier_gini", "val_restricted_loss", "train_excluded_loss")
    for col in cols:
        step, last = _last(c, col)
        lines.append(
            f"  {col}: step {first} {_at(c, col, first):.3f}, step {at} {_at(c, col, at):.3f}, "
            f"min {c[col].min():.3f}, max {c[col].max():.3f}, final (step {step:,}) {last:.3f}"
        )
    step, last = _last(c, "fourier_n90")
    lines.append(
        f"  fourier_n90: step {first} {_n(_at(c, 'fourier_n90', first))}, final (step {step:,}) {_n(last)}"
    )
    rise = largest_rise(c.step, c.train_excluded_loss)
    if rise is None:
        lines.append("  train_excluded_loss never rises")
    else:
        s0, v0, s1, v1 = rise
        lines.append(
            f"  train_excluded_loss largest rise: {v0:.3f} at step {s0:,} to {v1:.3f} at step {s1:,}"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("storage", help="results directory of a progress_measures.py run")
    parser.add_argument("--sweep", default="progress_measures")
    parser.add_argument("--at", type=int, default=500, help="an eval step whose values to print")
    args = parser.parse_args(argv)
    runs = load(args.storage, args.sweep)
    rows = pd.DataFrame([run.runs_row for run in runs])
    print(
        f"sweep {args.sweep} under {args.storage}: {len(runs)} runs, devices {sorted(set(rows.device))}, "
        f"grokscan {sorted(set(rows.grokscan_version))}, summed run wall {rows.wall_s.sum():.0f} s"
    )
    print(table(runs))
    print(lead_ranges(runs))
    for run in runs:
        print("\n".join(details(run, args.at)))


if __name__ == "__main__":
    main()
