"""The ticket comparison (Grokking Tickets, `grokscan.engine.tickets`): step_gen against the pruning rate for
the ticket and each control, the dense net as a horizontal line, one panel per weight decay."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from grokscan.errors import UserError
from grokscan.viz.style import fmt

KINDS = ("magnitude", "random", "dense_l2", "dense_l1")
LABELS = {"magnitude": "ticket (magnitude)", "random": "random mask", "dense_l2": "dense, ticket's L2 norm"}
LABELS |= {"dense_l1": "dense, ticket's L1 norm", "none": "dense net"}


def is_ticket_sweep(runs: pd.DataFrame) -> bool:
    return "ticket" in runs and bool(runs["ticket"].isin(KINDS).any())


def _median_time(rows: pd.DataFrame) -> tuple[float, bool]:
    """Median over seeds of step_gen, a run that never generalized counting as its steps_run; and whether
    that median is censored (more than half never generalized)."""
    times = rows["step_gen"].fillna(rows["steps_run"]).astype(float)
    return float(times.median()), bool(rows["step_gen"].isna().mean() > 0.5)


def tickets_figure(runs: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Median step_gen against prune_rate per ticket kind (dodged a little so equal values stay visible);
    open markers where the median is censored (the budget, not a step_gen); one panel per weight_decay
    (only the first when `ax` is given); the dense net's median as a horizontal line.

    Raises:
        UserError: no finished derived runs.
    """
    ok = runs[runs["status"] == "ok"]
    if not is_ticket_sweep(ok):
        raise UserError(
            "kind='tickets' needs finished runs with ticket magnitude, random, dense_l2 or dense_l1"
        )
    decays = sorted(ok["weight_decay"].unique(), reverse=True)[: 1 if ax is not None else None]
    if ax is None:
        fig = Figure(figsize=(3.6 * len(decays) + 2.4, 3.6), layout="constrained", dpi=110)
        axes = list(np.atleast_1d(fig.subplots(1, len(decays), sharey=True)))
    else:
        fig, axes = ax.figure, [ax]
    palette = dict(zip((*KINDS, "none"), sns.color_palette("colorblind", len(KINDS) + 1), strict=True))
    for k, (ax_, wd) in enumerate(zip(axes, decays, strict=True)):
        rows = ok[ok["weight_decay"] == wd]
        all_rates = np.sort(ok["prune_rate"].dropna().unique())
        step = np.diff(all_rates).min(initial=0.2)
        for j, kind in enumerate(KINDS):
            sub = rows[rows["ticket"] == kind]
            if sub.empty:
                continue
            points = [(rate, *_median_time(g)) for rate, g in sub.groupby("prune_rate")]
            rates, times, censored = (np.array(v) for v in zip(*points, strict=True))
            rates = rates + (j - 1.5) * 0.04 * step
            ax_.plot(rates, times, color=palette[kind], lw=1.4, label=LABELS[kind])
            ax_.scatter(rates[~censored], times[~censored], color=palette[kind], s=26, zorder=3)
            ax_.scatter(rates[censored], times[censored], facecolors="none", edgecolors=palette[kind], s=30)
        dense = rows[rows["ticket"] == "none"]
        if len(dense):
            time, censored = _median_time(dense)
            label = LABELS["none"] + (" (never generalized)" if censored else "")
            ax_.axhline(time, color=palette["none"], ls="--" if censored else "-", lw=1.2, label=label)
        ax_.set_xticks(all_rates, [fmt(r) for r in all_rates])
        ax_.set_ylim(0, ok["steps_run"].max() * 1.05)
        ax_.set(xlabel="prune_rate (fraction of weights pruned)", title=f"weight_decay={fmt(wd)}")
        sns.despine(ax=ax_)
        if k == 0:
            ax_.set_ylabel("median step_gen (steps)")
            handles, _ = ax_.get_legend_handles_labels()
            censored_key = Line2D([], [], marker="o", mfc="none", color="#555555", ls="none")
            handles.append(censored_key)
            censored_key.set_label("never generalized: its budget")
            fig.legend(handles=handles, loc="outside right center", fontsize="x-small", frameon=False)
    return fig
