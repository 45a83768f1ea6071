"""Cell maps of a sweep: the majority phase and the median step_gen of each grid cell over its seeds.

Grid cells are categorical: one cell per value of a column, in ascending order, with y growing upwards as in
a paper's phase diagram.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from grokscan.results.analysis import phase_table
from grokscan.results.phases import PHASES
from grokscan.viz.style import (
    NO_DATA,
    OVER_BUDGET,
    PHASE_COLORS,
    grid_axes,
    is_log_spaced,
    new_axes,
    pooled_note,
    steps_axis,
    steps_text,
    tick_labels,
)


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
    ax.set_xticks(np.arange(len(xs)) + 0.5, tick_labels(xs), rotation=45 if len(xs) > 8 else 0)
    ax.set_xlabel(x + (" (log-spaced)" if is_log_spaced(xs) else ""))
    if y is None:
        ax.set_yticks([])
    else:
        ax.set_yticks(np.arange(len(ys)) + 0.5, tick_labels(ys))
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
    """Majority phase of each grid cell over its seeds (the runs' ``phase`` column); hatched where the seeds
    disagree."""
    x, y = grid_axes(runs, x, y)
    table = phase_table(runs, x, y)
    xs, ys, phase = _grid(table, x, y, "phase")
    mixed = _grid(table, x, y, "mixed")[2].fillna(False).astype(bool).to_numpy()
    codes = phase.apply(lambda col: col.map({p: i for i, p in enumerate(PHASES)})).to_numpy(float)
    fig, ax = new_axes(ax, _cell_size(xs, ys, 2.2))
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
    _frame_cells(ax, xs, ys, x, y, title, pooled_note(runs, (x, y)))
    return fig


def time_map(
    runs: pd.DataFrame, x: str | None = None, y: str | None = None, ax: Axes | None = None
) -> Figure:
    """Median step_gen over seeds per cell (log colour scale); cells where more than half of the runs never
    generalized are grey, hatched and labelled "> budget" (the median is censored there)."""
    x, y = grid_axes(runs, x, y)
    table = phase_table(runs, x, y)
    xs, ys, median = _grid(table, x, y, "median_step_gen")
    over = _grid(table, x, y, "step_gen_over_budget")[2].fillna(False).astype(bool).to_numpy()
    budget = _grid(table, x, y, "budget")[2].to_numpy(float, na_value=np.nan)
    values = median.to_numpy(float)
    fig, ax = new_axes(ax, _cell_size(xs, ys, 1.4))
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
        steps_axis(bar.ax.yaxis, norm.vmin, norm.vmax)
    if len(xs) <= 16:
        for i, j in np.ndindex(values.shape):
            if over[i, j]:
                text, color = f"> {steps_text(budget[i, j])}", "black"
            elif np.isfinite(values[i, j]):
                light = sum(cmap(norm(values[i, j]))[:3]) > 1.6
                text, color = steps_text(values[i, j]), "black" if light else "white"
            else:
                continue
            ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize="x-small", color=color)
    if over.any():
        label = "> budget: over half of the runs never generalized"
        patch = Patch(facecolor=OVER_BUDGET, edgecolor="white", hatch="//", label=label)
        ax.legend(
            handles=[patch], loc="upper left", bbox_to_anchor=(0, -0.14), frameon=False, fontsize="small"
        )
    _frame_cells(ax, xs, ys, x, y, "median step_gen over seeds", pooled_note(runs, (x, y)))
    return fig
