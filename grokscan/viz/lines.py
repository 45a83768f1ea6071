"""Line figures of individual runs: grokking curves (train vs validation accuracy) and step_gen against a
column with the censored exponential fit and its bootstrap band."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from grokscan.errors import UserError
from grokscan.results.analysis import ScalingFit, fit_scaling
from grokscan.results.phases import PHASES
from grokscan.viz.progress_panels import draw_progress, progress_rows
from grokscan.viz.style import (
    PHASE_COLORS,
    TRAIN_COLOR,
    VAL_COLOR,
    fmt,
    grid_axes,
    new_axes,
    pooled_note,
    steps_axis,
    varying_columns,
)

# Curve columns drawn in a curves panel, when stored: (column, colour, legend label).
ACCURACY_CURVES = (("train_acc", TRAIN_COLOR, "train"), ("val_acc", VAL_COLOR, "validation"))


def pick_runs(runs: pd.DataFrame, n: int = 4) -> list[str]:
    """Up to `n` run_ids for a curves figure: grokking runs first (spread from shortest to longest delay
    between fit and generalization), then one run of each other phase for contrast (by the runs' ``phase``
    column)."""
    ok = runs[runs["status"] == "ok"]
    grok = ok[ok["phase"] == "grokking"]
    grok = grok.assign(_delay=(grok["step_gen"] - grok["step_fit"]).astype(float)).sort_values("_delay")
    n_grok = min(len(grok), max(n - ok.loc[ok["phase"] != "grokking", "phase"].nunique(), (n + 1) // 2))
    picks = (
        list(grok["run_id"].iloc[np.linspace(0, len(grok) - 1, n_grok).round().astype(int)]) if n_grok else []
    )
    for phase in PHASES:
        rows = ok[(ok["phase"] == phase) & ~ok["run_id"].isin(picks)]
        if phase != "grokking" and len(rows) and len(picks) < n:
            picks.append(rows["run_id"].iloc[0])
    rest = ok.loc[~ok["run_id"].isin(picks), "run_id"]
    return list(dict.fromkeys(picks + list(rest.iloc[: n - len(picks)])))


def curves_figure(
    runs: pd.DataFrame, curves: pd.DataFrame | None, ax: Axes | None = None, n: int = 4
) -> Figure:
    """Train and validation accuracy against log-scaled steps for the runs of `pick_runs(runs, n)`, with
    dotted lines at step_fit and step_gen and the delay between them shaded; one panel per run (only the
    first run when `ax` is given). When the curves hold progress measures (a sweep's `record`), a panel
    row per group of them (`viz.progress_panels`) follows under each run, on the same step axis.

    Raises:
        UserError: no curves frame, or no stored accuracy curves for the picked runs.
    """
    if curves is None:
        raise UserError(
            "kind='curves' needs the curves frame: curves=grokscan.load_curves(results_dir, sweep)"
        )
    drawn = [(column, color, label) for column, color, label in ACCURACY_CURVES if column in curves]
    ids = [i for i in pick_runs(runs, 1 if ax is not None else n) if (curves["run_id"] == i).any()]
    if not ids or not drawn:
        raise UserError("no stored accuracy curves for the finished runs of this selection")
    extra = progress_rows(curves[curves["run_id"].isin(ids)]) if ax is None else []
    if ax is None:
        size = (3.3 * len(ids) + 0.6, 3.3 + 2.2 * len(extra))
        fig = Figure(figsize=size, layout="constrained", dpi=110)
        grid = np.array(fig.subplots(1 + len(extra), len(ids), sharex="col", sharey="row", squeeze=False))
        axes = list(grid[0])
    else:
        fig, axes, grid = ax.figure, [ax], np.array([[ax]])
    shown = [*varying_columns(runs), "seed"]
    for k, (ax_, run_id) in enumerate(zip(axes, ids, strict=True)):
        run = runs.loc[runs["run_id"] == run_id].iloc[0]
        c = curves[(curves["run_id"] == run_id) & (curves["step"] > 0)].sort_values("step")
        for row, below in zip(extra, grid[1:, k], strict=True):
            draw_progress(below, row, c, legend=k == 0)
            _mark_steps(below, run)
        for column, color, label in drawn:
            ax_.plot(c["step"], c[column], color=color, lw=1.6, label=label)
        fit, gen = run["step_fit"], run["step_gen"]
        _mark_steps(ax_, run, labels=True)
        if pd.isna(gen):
            text = f"never generalized\n(censored at {run['steps_run']:,})"
            ax_.text(0.97, 0.5, text, transform=ax_.transAxes, ha="right", va="center", fontsize="x-small")
        if pd.notna(fit) and pd.notna(gen) and gen > fit:
            ax_.axvspan(fit, gen, color=PHASE_COLORS["grokking"], alpha=0.12, lw=0)
        ax_.set_xscale("log")
        steps_axis(ax_.xaxis, c["step"].min(), c["step"].max())
        ax_.set_ylim(-0.02, 1.02)
        grid[-1, k].set_xlabel("step")
        cell = ", ".join(f"{col}={fmt(run[col])}" for col in shown if col in run)
        ax_.set_title(f"{run['phase']}\n{cell}", fontsize="small")
        sns.despine(ax=ax_)
        if k == 0:
            ax_.set_ylabel("accuracy")
            ax_.legend(loc="upper left", fontsize="x-small", frameon=False)
    return fig


def _mark_steps(ax: Axes, run: pd.Series, labels: bool = False) -> None:
    """Dotted lines at the run's step_fit and step_gen (those it reached)."""
    for column, color in (("step_fit", TRAIN_COLOR), ("step_gen", VAL_COLOR)):
        if pd.notna(run[column]):
            ax.axvline(run[column], color=color, ls=":", lw=1.2, label=column if labels else None)


def _fit_label(fit: ScalingFit, n_x_generalized: int) -> str:
    lo, hi = fit.b_ci
    text = f"b = {fit.b:.3g}" + (f" [{lo:.3g}, {hi:.3g}]" if np.isfinite([lo, hi]).all() else "")
    if fit.n_boot_failed:  # said here once, not as a warning per fit
        text += f", {fit.n_boot_failed} of {fit.n_boot} resamples no fit"
    return text + (" (generalized at one x: weak)" if n_x_generalized < 2 else "")


def scaling_figure(
    runs: pd.DataFrame,
    x: str | None = None,
    y: str | None = None,
    ax: Axes | None = None,
    *,
    budget: int | None = None,
    n_boot: int = 200,
) -> Figure:
    """step_gen of each run against `x` (log scale) with the censored fit log step_gen = a − b·x and its
    band, one fit per value of `y`. Censored runs are open triangles at the step they were censored at; a
    fit resting on generalized runs at a single x is dashed. The band comes from the fit's own bootstrap
    (`n_boot` resamples; none when n_boot is 0).

    Raises:
        UserError: x is not numeric, or no run finished ok.
    """
    if x is None and y is None and "frac" in varying_columns(runs):
        x = "frac"
    x, y = grid_axes(runs, x, y)
    if not pd.api.types.is_numeric_dtype(runs[x]) or pd.api.types.is_bool_dtype(runs[x]):
        raise UserError(f"kind='scaling' fits step_gen against a numeric column; {x!r} is {runs[x].dtype}")
    ok = runs[runs["status"] == "ok"]
    if ok.empty:
        raise UserError("no finished runs (status ok) to plot")
    groups = [(None, ok)] if y is None else list(ok.groupby(y, sort=True))
    palette = sns.color_palette("colorblind" if len(groups) <= 8 else "viridis", len(groups))
    fig, ax = new_axes(ax, (6.4, 5.4))
    width = 0.12 * np.diff(np.unique(ok[x].to_numpy(float))).min(initial=1.0)  # dodge span of a group's x
    handles = []
    for k, ((value, g), color) in enumerate(zip(groups, ["#333333"] if y is None else palette, strict=True)):
        dodge = (k / max(len(groups) - 1, 1) - 0.5) * width if len(groups) > 1 else 0.0
        gen, cens = g[g["step_gen"].notna()], g[g["step_gen"].isna()]
        ax.scatter(
            gen[x] + dodge, gen["step_gen"].astype(float), color=color, s=22, alpha=0.85, lw=0, zorder=3
        )
        style = {"marker": "^", "s": 38, "facecolors": "none", "edgecolors": color, "lw": 1.1, "zorder": 3}
        ax.scatter(cens[x] + dodge, cens["steps_run"].astype(float), **style)
        label = "fit" if y is None else f"{y}={fmt(value)}"
        try:
            fit = fit_scaling(g, x=x, budget=budget, n_boot=n_boot)
        except (UserError, RuntimeError, ArithmeticError):  # too little data, or no convergence
            handles.append(Line2D([], [], color=color, marker="o", ls="none", label=f"{label}: no fit"))
            continue
        grid = np.linspace(g[x].min(), g[x].max(), 80)
        weak = gen[x].nunique() < 2
        ax.plot(grid, fit.predict(grid), color=color, lw=1.2 if weak else 1.8, ls="--" if weak else "-")
        band = None if weak else fit.band(grid)
        if band is not None:
            ax.fill_between(grid, band[0], band[1], color=color, alpha=0.15, lw=0)
        text = f"{label}: {_fit_label(fit, gen[x].nunique())}"
        handles.append(Line2D([], [], color=color, marker="o", ls="--" if weak else "-", label=text))
    top = budget or int(ok["steps"].max())
    ax.axhline(top, color="#888888", ls=":", lw=1.2)
    gray = {"color": "#555555", "ls": "none"}
    handles += [
        Line2D([], [], color="#888888", ls=":", label=f"budget ({top:,} steps)"),
        Line2D([], [], marker="o", label="generalized: step_gen", **gray),
        Line2D([], [], marker="^", mfc="none", label="censored: not by steps_run", **gray),
        Patch(facecolor="#555555", alpha=0.15, label="95% bootstrap band"),
    ]
    times = pd.concat([ok["step_gen"], ok["steps_run"]]).dropna().astype(float)
    ax.set(
        yscale="log", xlabel=x, ylabel="step_gen (steps)", ylim=(times.min() / 2, max(times.max(), top) * 2)
    )
    note = pooled_note(runs, (x, y))
    title = f"median step_gen = exp(a − b·{x}), censored fit" + (f"\n{note}" if note else "")
    ax.set_title(title, fontsize="medium")
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncols=2,
        frameon=False,
        fontsize="x-small",
    )
    steps_axis(ax.yaxis, *ax.get_ylim())
    sns.despine(ax=ax)
    return fig
