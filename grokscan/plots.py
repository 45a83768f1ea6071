"""Figures of a sweep: phase maps, time-to-generalize heatmaps, grokking curves and scaling fits.

Every figure is a `matplotlib.figure.Figure` built without pyplot (rendered by Agg; nothing global is
changed, no window opens), styled by seaborn. Grid cells are categorical: one cell per value of a column,
in ascending order, with y growing upwards as in a paper's phase diagram.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter

from grokscan.config import FIELD_NAMES
from grokscan.result import PHASES

if TYPE_CHECKING:
    pass

KINDS = ("phase", "time", "curves", "scaling")
NOT_AXES = ("seed", "split_seed")  # replicates of a cell, never an axis
# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies, fixed across figures.
PHASE_COLORS = {
    "comprehension": "#009E73",
    "grokking": "#E69F00",
    "memorization": "#56B4E9",
    "confusion": "#CC79A7",
}
NO_DATA = "#f2f2f2"
OVER_BUDGET = "#c8c8c8"
TRAIN_COLOR, VAL_COLOR = "#D55E00", "#0072B2"
_STYLE = {
    **sns.axes_style("ticks"),
    **sns.plotting_context("notebook", font_scale=0.85),
    "hatch.linewidth": 0.8,
}


def varying_columns(runs: pd.DataFrame) -> list[str]:
    """Config columns that vary independently in `runs`, in RunConfig order, seeds excluded: more than one
    value (nulls count as one), and not fixed by the columns before it (e.g. `p`, null for the permutation
    tasks and 97 for the others, is no axis of a sweep over `task`)."""
    out: list[str] = []
    for c in FIELD_NAMES:
        if c not in runs or c in NOT_AXES or runs[c].nunique(dropna=False) < 2:
            continue
        if not out or (runs.groupby(out, dropna=False)[c].nunique(dropna=False) > 1).any():
            out.append(c)
    return out


def grid_axes(runs: pd.DataFrame, x: str | None = None, y: str | None = None) -> tuple[str, str | None]:
    """The (x, y) columns of a grid figure: named ones are checked; a missing one is the next varying config
    column (so a 2-D sweep is never silently pooled); y is None (a 1-D strip) when nothing else varies."""
    if runs.empty:
        raise ValueError("no runs to plot")
    varying = varying_columns(runs)
    for name in (x, y):
        if name is not None and name not in runs.columns:
            raise ValueError(
                f"unknown column {name!r}: columns that vary in this sweep: {', '.join(varying) or 'none'}"
            )
    if x is not None and x == y:
        raise ValueError(f"x and y are both {x!r}: pick two different columns")
    free = [c for c in varying if c not in (x, y)]
    if x is None:
        if not free and y is None:
            raise ValueError(
                "nothing varies in this sweep apart from seeds: a phase diagram needs a grid column "
                "(e.g. frac or weight_decay)"
            )
        x, y = (free.pop(0), y) if free else (y, None)
    if y is None and free:
        y = free.pop(0)
    return x, y


def _pooled_note(runs: pd.DataFrame, used: Sequence[str | None]) -> str:
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
    spread = lambda d: np.std(d) / np.mean(d)  # noqa: E731
    return bool(spread(logs) < 0.35 and spread(logs) < spread(diffs))


def _fmt(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:g}"
    return str(value)


def _tick_labels(values: Sequence) -> list[str]:
    if not is_log_spaced(values):
        return [_fmt(v) for v in values]
    labels = []
    for v in values:
        exponent = math.floor(math.log10(v) + 1e-9)
        mantissa = v / 10**exponent
        head = "" if abs(mantissa - 1) < 1e-6 else f"{mantissa:g}{{\\times}}"
        labels.append(f"${head}10^{{{exponent}}}$" if not -1 <= exponent <= 2 else _fmt(v))
    return labels


def _steps(value: float) -> str:
    return f"{value:,.0f}" if value < 10_000 else f"{value / 1000:,.0f}k"


def _steps_axis(axis: Axis, lo: float, hi: float) -> None:
    """Label a log axis of steps with plain numbers (2,000 rather than 2×10^3), and its minor ticks at 2 and
    5 too when fewer than three powers of ten fall within [lo, hi]."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    decades = math.floor(math.log10(hi)) - math.ceil(math.log10(lo)) + 1 if 0 < lo < hi else 0
    minor = FuncFormatter(lambda v, _: f"{v:,.0f}" if decades < 3 and v >= 1 and f"{v:e}"[0] in "25" else "")
    axis.set_minor_formatter(minor)


def _new_axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, layout="constrained", dpi=110)
    return fig, fig.add_subplot()


def _grid(table: pd.DataFrame, x: str, y: str | None, column: str) -> tuple[list, list, pd.DataFrame]:
    """`column` of a phase table as a (y values × x values) frame, both ascending, missing cells NaN."""
    xs = sorted(table[x].dropna().unique())
    if y is None:
        return xs, [None], table.set_index(x)[[column]].T.reindex(columns=xs)
    ys = sorted(table[y].dropna().unique())
    return xs, ys, table.pivot(index=y, columns=x, values=column).reindex(index=ys, columns=xs)


def _frame_cells(ax: Axes, xs: list, ys: list, x: str, y: str | None, title: str, note: str) -> None:
    ax.set_xlim(0, len(xs))
    ax.set_ylim(0, len(ys))
    ax.set_xticks(np.arange(len(xs)) + 0.5, _tick_labels(xs), rotation=45 if len(xs) > 8 else 0)
    ax.set_xlabel(x + (" (log-spaced)" if is_log_spaced(xs) else ""))
    if y is None:
        ax.set_yticks([])
    else:
        ax.set_yticks(np.arange(len(ys)) + 0.5, _tick_labels(ys))
        ax.set_ylabel(y + (" (log-spaced)" if is_log_spaced(ys) else ""))
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize="medium")
    sns.despine(ax=ax, left=True, bottom=True)
    ax.tick_params(length=0)


def _hatch(ax: Axes, cells: np.ndarray, hatch: str, color: str) -> None:
    for i, j in zip(*np.nonzero(cells), strict=True):
        cell = Rectangle((j + 0.02, i + 0.02), 0.96, 0.96, fill=False, hatch=hatch, edgecolor=color, lw=0)
        ax.add_patch(cell)


def _cell_size(xs: list, ys: list, extra: float) -> tuple[float, float]:
    """Figure inches for cells of about 0.8 × 0.6 in, plus `extra` width for a legend or colorbar."""
    return max(3.0, 0.8 * len(xs) + 1.2) + extra, max(2.8, 0.6 * len(ys) + 1.7)


def phase_map(
    runs: pd.DataFrame, x: str | None = None, y: str | None = None, ax: Axes | None = None
) -> Figure:
    """Majority phase of each grid cell over its seeds; hatched where the seeds disagree."""
    from grokscan.analysis import phase_table

    x, y = grid_axes(runs, x, y)
    table = phase_table(runs, x, y)
    xs, ys, phase = _grid(table, x, y, "phase")
    mixed = _grid(table, x, y, "mixed")[2].fillna(False).astype(bool).to_numpy()
    codes = phase.apply(lambda col: col.map({p: i for i, p in enumerate(PHASES)})).to_numpy(float)
    fig, ax = _new_axes(ax, _cell_size(xs, ys, 2.2))
    cmap = ListedColormap([PHASE_COLORS[p] for p in PHASES]).with_extremes(bad=NO_DATA)
    norm = BoundaryNorm(np.arange(len(PHASES) + 1) - 0.5, len(PHASES))
    ax.pcolormesh(np.ma.masked_invalid(codes), cmap=cmap, norm=norm, edgecolors="white", linewidth=1.5)
    _hatch(ax, mixed, "///", "black")
    handles = [Patch(facecolor=PHASE_COLORS[p], label=p) for p in PHASES]
    if mixed.any():
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="seeds disagree"))
    if np.isnan(codes).any():
        handles.append(Patch(facecolor=NO_DATA, edgecolor="#999999", label="no finished run"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, frameon=False)
    counts = table["n"] + table["n_failed"]
    k = int(counts.max())
    if k == 1:
        title = "phase (1 run per cell)"
    else:
        title = f"phase (majority over {'' if counts.min() == k else '≤'}{k} runs per cell)"
    _frame_cells(ax, xs, ys, x, y, title, _pooled_note(runs, (x, y)))
    return fig


def time_map(
    runs: pd.DataFrame, x: str | None = None, y: str | None = None, ax: Axes | None = None
) -> Figure:
    """Median step_gen over seeds per cell (log colour scale); cells where more than half of the runs never
    generalized are grey, hatched and labelled "> budget" (the median is censored there)."""
    from grokscan.analysis import phase_table

    x, y = grid_axes(runs, x, y)
    table = phase_table(runs, x, y)
    xs, ys, median = _grid(table, x, y, "median_step_gen")
    over = _grid(table, x, y, "step_gen_over_budget")[2].fillna(False).astype(bool).to_numpy()
    budget = _grid(table, x, y, "budget")[2].to_numpy(float, na_value=np.nan)
    values = median.to_numpy(float)
    fig, ax = _new_axes(ax, _cell_size(xs, ys, 1.4))
    finite = values[np.isfinite(values) & (values > 0)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (1.0, 10.0)
    norm = LogNorm(lo / 1.5, hi * 1.5) if lo == hi else LogNorm(lo, hi)
    cmap = sns.color_palette("mako_r", as_cmap=True).with_extremes(bad=NO_DATA)
    mesh = ax.pcolormesh(
        np.ma.masked_invalid(values), cmap=cmap, norm=norm, edgecolors="white", linewidth=1.5
    )
    ax.pcolormesh(np.ma.masked_where(~over, over.astype(float)), cmap=ListedColormap([OVER_BUDGET]))
    _hatch(ax, over, "//", "white")
    if finite.size:
        bar = fig.colorbar(mesh, ax=ax, label="median step_gen (log scale)", shrink=0.9)
        _steps_axis(bar.ax.yaxis, norm.vmin, norm.vmax)
    if len(xs) <= 16:
        for i, j in np.ndindex(values.shape):
            if over[i, j]:
                text, color = f"> {_steps(budget[i, j])}", "black"
            elif np.isfinite(values[i, j]):
                light = sum(cmap(norm(values[i, j]))[:3]) > 1.6
                text, color = _steps(values[i, j]), "black" if light else "white"
            else:
                continue
            ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize="x-small", color=color)
    if over.any():
        label = "> budget: over half of the runs never generalized"
        patch = Patch(facecolor=OVER_BUDGET, edgecolor="white", hatch="//", label=label)
        ax.legend(
            handles=[patch], loc="upper left", bbox_to_anchor=(0, -0.14), frameon=False, fontsize="small"
        )
    _frame_cells(ax, xs, ys, x, y, "median step_gen over seeds", _pooled_note(runs, (x, y)))
    return fig


def phase_diagram(
    runs: pd.DataFrame,
    x: str | None = None,
    y: str | None = None,
    kind: str = "phase",
    curves: pd.DataFrame | None = None,
    ax: Axes | None = None,
    *,
    budget: int | None = None,
    n_boot: int = 200,
) -> Figure:
    """One figure of a sweep's runs frame (`grokscan.load_runs`).

    Args:
        runs: Runs of one sweep.
        x, y: Grid columns; None picks the config columns that vary (seeds excluded). For "scaling", x is
            the fitted variable (default frac) and y groups runs into one fit per value.
        kind: "phase" (majority phase per cell), "time" (median step_gen per cell), "curves" (accuracy
            curves of up to 4 runs, grokking first; needs `curves`) or "scaling" (step_gen against x with
            the censored exponential fit and its 95% bootstrap band).
        curves: Curves frame (`grokscan.load_curves`), for kind "curves".
        ax: Draw into this axes instead of a new figure.
        budget, n_boot: Passed to `fit_scaling` for kind "scaling".

    Raises:
        ValueError: unknown kind or column, nothing varies, or no data for the figure.
    """
    from grokscan.lineplots import curves_figure, scaling_figure  # they build on this module's helpers

    with mpl.rc_context(_STYLE):
        if kind == "phase":
            return phase_map(runs, x, y, ax)
        if kind == "time":
            return time_map(runs, x, y, ax)
        if kind == "curves":
            return curves_figure(runs, curves, ax)
        if kind == "scaling":
            return scaling_figure(runs, x, y, ax, budget=budget, n_boot=n_boot)
    raise ValueError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
