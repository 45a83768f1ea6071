"""`phase_diagram`: one figure of a sweep's runs, by kind (phase map, time map, curves, scaling fit,
per-position loss curves of sequence runs, the ticket comparison)."""

from __future__ import annotations

import matplotlib as mpl
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from grokscan.errors import UserError
from grokscan.results.phases import phases
from grokscan.viz.grids import phase_map, time_map
from grokscan.viz.lines import curves_figure, scaling_figure
from grokscan.viz.positions import positions_figure
from grokscan.viz.style import STYLE
from grokscan.viz.tickets import tickets_figure

KINDS = ("phase", "time", "curves", "scaling", "positions", "tickets")


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
    gap: int | None = None,
) -> Figure:
    """One figure of a sweep's runs frame (`grokscan.load_runs`).

    Args:
        runs: Runs of one sweep.
        x, y: Grid columns; None picks the config columns that vary (seeds excluded). For "scaling", x is
            the fitted variable (default frac) and y groups runs into one fit per value.
        kind: "phase" (majority phase per cell), "time" (median step_gen per cell), "curves" (accuracy
            curves of up to 4 runs, grokking first; needs `curves`) or "scaling" (step_gen against x with
            the censored exponential fit and its 95% bootstrap band), "positions" (loss per answer position
            of up to 3 sequence runs, the infinite-data run first; needs `curves`), "tickets" (median
            step_gen against prune_rate of Grokking Tickets and their controls, `viz.tickets`).
        curves: Curves frame (`grokscan.load_curves`), for kinds "curves" and "positions".
        ax: Draw into this axes instead of a new figure.
        budget, n_boot: Passed to `fit_scaling` for kind "scaling".
        gap: Steps between fit and generalization that separate grokking from comprehension; the phases
            are named anew with it (`grokscan.results.phases`). None: the runs' ``phase`` column.

    Raises:
        UserError: unknown kind or column, nothing varies, no data for the figure, or a negative gap.
    """
    if kind not in KINDS:
        raise UserError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    if gap is not None:
        runs = runs.assign(phase=phases(runs, gap))
    with mpl.rc_context(STYLE):
        if kind == "phase":
            return phase_map(runs, x, y, ax)
        if kind == "time":
            return time_map(runs, x, y, ax)
        if kind == "curves":
            return curves_figure(runs, curves, ax)
        if kind == "positions":
            return positions_figure(runs, curves, ax)
        if kind == "tickets":
            return tickets_figure(runs, ax)
        return scaling_figure(runs, x, y, ax, budget=budget, n_boot=n_boot)
