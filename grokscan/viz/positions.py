"""Per-answer-position loss curves of sequence runs: one line per answer position (for add_digits, per
digit: Nanda & Lieberum 2022 show each digit of 5-digit addition with its own phase change), validation
solid and training dotted, over log steps; one panel per run, the infinite-data run first."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from grokscan.errors import UserError
from grokscan.results.positions import positions_long
from grokscan.viz.lines import pick_runs
from grokscan.viz.style import fmt, steps_axis

LOSS_FLOOR = 1e-9  # losses drawn on a log axis are clipped here (float32 cross-entropy reaches ~1e-8)
FIT_COLOR, GEN_COLOR = "#999999", "#222222"  # step markers, apart from the positions' palette


def pick_position_runs(runs: pd.DataFrame, curves: pd.DataFrame | None = None, n: int = 3) -> list[str]:
    """Up to `n` run_ids of finished sequence runs for a positions figure: one infinite-data run (the one
    that generalized soonest) first, then finite-data runs as `pick_runs` orders them (grokking first).
    With `curves`, only runs that have per-position curves there."""
    ok = runs[runs["status"] == "ok"]
    if curves is not None:
        ok = ok[ok["run_id"].isin(positions_long(curves)["run_id"].unique())]
    elif "regime" in ok:
        ok = ok[ok["regime"].notna()]
    infinite = ok["regime"] == "infinite" if "regime" in ok else pd.Series(False, index=ok.index)
    picks = []
    if infinite.any():
        streamed = ok[infinite].assign(_gen=ok["step_gen"].astype(float).fillna(np.inf))
        picks.append(streamed.sort_values(["_gen", "steps_run"])["run_id"].iloc[0])
    finite = ok[~infinite]
    if len(finite) and n > len(picks):
        picks += pick_runs(finite, n - len(picks))
    return picks[:n]


def _title(run: pd.Series) -> str:
    data = "infinite data" if run.get("regime") == "infinite" else f"train_size={fmt(run.get('train_size'))}"
    phase = run["phase"] if pd.notna(run.get("phase")) else run["status"]
    return f"{run['task']}: {phase}\n{data}, weight_decay={fmt(run['weight_decay'])}, seed={run['seed']}"


def positions_figure(
    runs: pd.DataFrame, curves: pd.DataFrame | None, ax: Axes | None = None, n: int = 3
) -> Figure:
    """Per-position validation (solid) and training (dotted) loss against log-scaled steps for the runs of
    `pick_position_runs(runs, curves, n)`, log-scaled loss, dotted verticals at step_fit and step_gen; one
    panel per run (only the first run when `ax` is given).

    Raises:
        UserError: no curves frame, or no per-position curves for the finished runs (not a sequence sweep).
    """
    if curves is None:
        raise UserError(
            "kind='positions' needs the curves frame: curves=grokscan.load_curves(results_dir, sweep)"
        )
    ids = pick_position_runs(runs, curves, 1 if ax is not None else n)
    if not ids:
        raise UserError(
            "no per-position curves for the finished runs of this selection (they are recorded for the "
            "sequence tasks add_digits, repeat_subseq and max_of_seq)"
        )
    tidy = positions_long(curves[curves["run_id"].isin(ids)])
    if ax is None:
        fig = Figure(figsize=(3.8 * len(ids) + 1.2, 3.6), layout="constrained", dpi=110)
        axes = list(np.atleast_1d(fig.subplots(1, len(ids), sharey=True)))
    else:
        fig, axes = ax.figure, [ax]
    n_pos = int(tidy["position"].max()) + 1
    palette = sns.color_palette("viridis" if n_pos > 8 else "colorblind", n_pos)
    for k, (ax_, run_id) in enumerate(zip(axes, ids, strict=True)):
        run = runs.loc[runs["run_id"] == run_id].iloc[0]
        c = tidy[(tidy["run_id"] == run_id) & (tidy["step"] > 0)]
        for pos in sorted(c["position"].unique()):
            for split, style in (("val", "-"), ("train", ":")):
                line = c[(c["position"] == pos) & (c["split"] == split)].sort_values("step")
                loss = line["loss"].clip(lower=LOSS_FLOOR)
                ax_.plot(line["step"], loss, color=palette[pos], ls=style, lw=1.5 if split == "val" else 1.0)
        for column, color, style in (("step_fit", FIT_COLOR, ":"), ("step_gen", GEN_COLOR, "--")):
            if pd.notna(run[column]):
                ax_.axvline(run[column], color=color, ls=style, lw=1.1)
        ax_.set(xscale="log", yscale="log", xlabel="step")
        steps_axis(ax_.xaxis, max(c["step"].min(), 1), max(c["step"].max(), 2))
        ax_.set_title(_title(run), fontsize="small")
        sns.despine(ax=ax_)
        if k == 0:
            ax_.set_ylabel("loss per answer position")
    handles = [Line2D([], [], color=palette[p], lw=1.5, label=f"position {p}") for p in range(n_pos)]
    handles += [
        Line2D([], [], color="#555555", ls="-", label="validation"),
        Line2D([], [], color="#555555", ls=":", label="training"),
        Line2D([], [], color=FIT_COLOR, ls=":", label="step_fit"),
        Line2D([], [], color=GEN_COLOR, ls="--", label="step_gen"),
    ]
    axes[-1].legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="x-small")
    return fig
