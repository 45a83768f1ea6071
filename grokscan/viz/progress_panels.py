"""Progress measures (`grokscan.engine.progress`) under a run's accuracy curves: one panel row per group
of measures a sweep recorded, sharing the accuracy panel's log-step axis, so what moves first is read
straight down a column.

Opt-in measures are NaN at the evals that skip them (`record['every']`), so each line joins only the
evals that computed it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.ticker import NullFormatter

from grokscan.viz.style import TRAIN_COLOR, VAL_COLOR

RESTRICTED, EXCLUDED, REFERENCE = "#009E73", "#CC79A7", "#999999"


@dataclass(frozen=True)
class ProgressRow:
    """One panel row: (column, colour, line style, legend label) lines on a y axis of `scale`."""

    ylabel: str
    lines: tuple[tuple[str, str, str, str], ...]
    scale: str = "linear"


FOURIER = ProgressRow(
    "embedding spectrum",
    (
        ("fourier_top_share", VAL_COLOR, "-", "top-frequency share"),
        ("fourier_gini", TRAIN_COLOR, "-", "Gini of frequencies"),
    ),
)
KEY_FREQ_LOSSES = ProgressRow(
    "loss",
    (
        ("train_restricted_loss", RESTRICTED, "-", "restricted (train)"),
        ("val_restricted_loss", RESTRICTED, "--", "restricted (val)"),
        ("train_excluded_loss", EXCLUDED, "-", "excluded (train)"),
        ("val_excluded_loss", EXCLUDED, "--", "excluded (val)"),
        ("val_loss", REFERENCE, "-.", "full (val)"),
    ),
    scale="log",
)


CAPTION = (
    "Rows under the accuracy: the progress measures the sweep recorded (Nanda et al. 2023; "
    "<code>grokscan.engine.progress</code>): the share of the token embedding's norm in its key "
    "frequencies and the Gini coefficient of its spectrum, the restricted / excluded loss with the key "
    "frequencies beside the full validation loss, and per-layer weight norms."
)


def progress_rows(curves: pd.DataFrame) -> list[ProgressRow]:
    """The rows `curves` has data for: the Fourier measures, the key-frequency losses (the full validation
    loss beside them for reference), and the per-layer weight norms (norm_<name> columns)."""
    rows = []
    for row in (FOURIER, KEY_FREQ_LOSSES):
        if any(_has(curves, column) for column, *_ in row.lines if column != "val_loss"):
            rows.append(row)
    norms = [c for c in curves.columns if c.startswith("norm_") and _has(curves, c)]
    if norms:
        palette = sns.color_palette("colorblind", len(norms))
        lines = tuple((c, palette[k], "-", c[5:]) for k, c in enumerate(norms))
        rows.append(ProgressRow("weight norm per layer", lines))
    return rows


def _has(curves: pd.DataFrame, column: str) -> bool:
    return column in curves and bool(curves[column].notna().any())


def draw_progress(ax: Axes, row: ProgressRow, c: pd.DataFrame, legend: bool) -> None:
    """Draw `row`'s lines of one run's curves `c` (sorted by step, steps > 0) into `ax`."""
    for column, color, style, label in row.lines:
        if column not in c:
            continue
        kept = c[["step", column]].dropna()
        kept = kept[kept[column] > 0] if row.scale == "log" else kept
        if len(kept):
            ax.plot(kept["step"], kept[column], color=color, ls=style, lw=1.4, label=label)
    ax.set_yscale(row.scale)
    ax.yaxis.set_minor_formatter(NullFormatter())  # log minor labels crowd a short panel
    if row is FOURIER:
        ax.set_ylim(-0.02, 1.02)
    sns.despine(ax=ax)
    if legend:
        ax.set_ylabel(row.ylabel)
        ax.legend(loc="best", fontsize="xx-small", frameon=False)
