"""What every figure shares: fixed colours, the rc style, axis and tick helpers, and the choice of grid axes.

Figures are `matplotlib.figure.Figure`s built without pyplot (rendered by Agg; nothing global is changed,
no window opens), styled by seaborn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from grokscan.config import FIELD_NAMES, SEED_FIELDS
from grokscan.errors import UserError

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies, fixed across figures;
# undetermined (budget too short to tell, `grokscan.results.phases`) in a neutral grey.
PHASE_COLORS = {
    "comprehension": "#009E73",
    "grokking": "#E69F00",
    "undetermined": "#999999",
    "memorization": "#56B4E9",
    "confusion": "#CC79A7",
}
NO_DATA = "#f2f2f2"
OVER_BUDGET = "#c8c8c8"
TRAIN_COLOR, VAL_COLOR = "#D55E00", "#0072B2"
STYLE = {
    **sns.axes_style("ticks"),
    **sns.plotting_context("notebook", font_scale=0.85),
    "hatch.linewidth": 0.8,
}


def varying_columns(runs: pd.DataFrame) -> list[str]:
    """Config columns that vary independently in `runs`, in RunConfig order, seeds excluded: more than one
    value (nulls count as one), and not fixed by the columns before it (e.g. `p`, null for the permutation
    tasks and 97 for the others, is no axis of a sweep over `task`). Columns with one value besides null
    come last: a sequence sweep's batch_size, set only on its infinite-data runs, is no axis beside
    train_size."""
    present = [c for c in FIELD_NAMES if c in runs and c not in SEED_FIELDS]
    out: list[str] = []
    for c in sorted(present, key=lambda c: runs[c].nunique() < 2):
        if runs[c].nunique(dropna=False) < 2:
            continue
        if not out or (runs.groupby(out, dropna=False)[c].nunique(dropna=False) > 1).any():
            out.append(c)
    return out


def grid_axes(runs: pd.DataFrame, x: str | None = None, y: str | None = None) -> tuple[str, str | None]:
    """The (x, y) columns of a grid figure: named ones are checked; a missing one is the next varying config
    column (so a 2-D sweep is never silently pooled); y is None (a 1-D strip) when nothing else varies.

    Raises:
        UserError: no runs, an unknown column, x == y, or nothing varies apart from seeds.
    """
    if runs.empty:
        raise UserError("no runs to plot")
    varying = varying_columns(runs)
    for name in (x, y):
        if name is not None and name not in runs.columns:
            raise UserError(
                f"unknown column {name!r}: columns that vary in this sweep: {', '.join(varying) or 'none'}"
            )
    if x is not None and x == y:
        raise UserError(f"x and y are both {x!r}: pick two different columns")
    free = [c for c in varying if c not in (x, y)]
    if x is None:
        if not free and y is None:
            raise UserError(
                "nothing varies in this sweep apart from seeds: a phase diagram needs a grid column "
                "(e.g. frac or weight_decay)"
            )
        x, y = (free.pop(0), y) if free else (y, None)
    if y is None and free:
        y = free.pop(0)
    return x, y


def pooled_note(runs: pd.DataFrame, used: Sequence[str | None]) -> str:
    """A note naming the varying columns a figure pools over (does not show); "" when it shows them all.
    Only the rows drawn count: those with a value in every used column (a sequence sweep's infinite-data
    runs have no train_size, so a train_size axis pools nothing over their batch_size)."""
    runs = runs.dropna(subset=[c for c in used if c is not None])
    rest = [f"{c} ({runs[c].nunique(dropna=False)} values)" for c in varying_columns(runs) if c not in used]
    return f"pooled over {', '.join(rest)}" if rest else ""


def is_log_spaced(values: Sequence) -> bool:
    """True for positive numbers whose successive ratios are roughly constant (more so than their
    differences), e.g. 1e-3, 1e-2, 1e-1 or 0.1, 0.3, 1, 3; two values count when they differ by 10x."""
    v = np.unique(pd.to_numeric(pd.Series(list(values)), errors="coerce").dropna().to_numpy(float))
    if len(v) < 2 or len(v) != len(values) or v[0] <= 0:
        return False
    if len(v) == 2:
        return bool(v[1] / v[0] >= 10)
    logs, diffs = np.diff(np.log(v)), np.diff(v)

    def spread(d: np.ndarray) -> float:
        return float(np.std(d) / np.mean(d))

    return bool(spread(logs) < 0.35 and spread(logs) < spread(diffs))


def fmt(value: object) -> str:
    """A config value as a label: floats in %g form (0.1, 1, 10), anything else as str."""
    if isinstance(value, (float, np.floating)):
        return f"{value:g}"
    return str(value)


def tick_labels(values: Sequence) -> list[str]:
    """Labels of categorical ticks: 10^k (or m×10^k) for log-spaced values far from 1, else `fmt`."""
    if not is_log_spaced(values):
        return [fmt(v) for v in values]
    labels = []
    for v in values:
        exponent = math.floor(math.log10(v) + 1e-9)
        mantissa = v / 10**exponent
        head = "" if abs(mantissa - 1) < 1e-6 else f"{mantissa:g}{{\\times}}"
        labels.append(f"${head}10^{{{exponent}}}$" if not -1 <= exponent <= 2 else fmt(v))
    return labels


def steps_text(value: float) -> str:
    """A number of steps as short text: 2,300 or 45k."""
    return f"{value:,.0f}" if value < 10_000 else f"{value / 1000:,.0f}k"


def steps_axis(axis: Axis, lo: float, hi: float) -> None:
    """Label a log axis of steps with plain numbers (2,000 rather than 2×10^3), and its minor ticks at 2 and
    5 too when fewer than three powers of ten fall within [lo, hi]."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    decades = math.floor(math.log10(hi)) - math.ceil(math.log10(lo)) + 1 if 0 < lo < hi else 0
    minor = FuncFormatter(lambda v, _: f"{v:,.0f}" if decades < 3 and v >= 1 and f"{v:e}"[0] in "25" else "")
    axis.set_minor_formatter(minor)


def new_axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    """(figure, axes) to draw into: `ax` and its figure, or a new figure of `size` inches."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, layout="constrained", dpi=110)
    return fig, fig.add_subplot()
