"""Plotly figures of the live `serve` app: pure functions of the frames of `grokscan.results`.

Each builder returns a plain plotly figure dict (``{"data": [...], "layout": {...}}``), which Dash sends as
it is: building dicts skips plotly's per-property validation, so a view of a 100,000-run sweep stays fast.
Here: the helpers every live figure shares (plain values, axis values, filtering, the sweeps summary, the
message figure, fonts, margins and log ticks), the censored scaling fit and a cell's runs' curves; the grid
maps (phase, median step_gen) are in `grokscan.viz.serve_maps`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from grokscan.errors import UserError
from grokscan.results.analysis import fit_scaling
from grokscan.results.phases import PHASES
from grokscan.viz.style import TRAIN_COLOR, VAL_COLOR, fmt, steps_text

ALL = "__all__"  # filter value: pool over every value of the column
MAX_POINTS = 3000  # runs drawn in the scaling figure, over all groups (a fixed random subset beyond that)
_GROUP_COLORS = ["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494"]
_GROUP_COLORS += ["#ece133", "#56b4e9"]  # seaborn's "colorblind" palette
FONT = {"family": "system-ui, sans-serif", "size": 12}


def plain(value: Any) -> Any:
    """A frame value as a JSON-able Python value: None for any null, numpy scalars as Python scalars."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return plain(value.item())
    return value


def axis_values(series: pd.Series) -> list:
    """Distinct values of a column as plain Python values, ascending, with None last when any is null."""
    values = sorted(plain(v) for v in series.dropna().unique())
    return values + [None] if series.isna().any() else values


def numeric(runs: pd.DataFrame, column: str) -> bool:
    """Whether `column` of `runs` is a numeric (not boolean) column, i.e. one a scaling fit can use."""
    series = runs.get(column)
    return (
        series is not None
        and pd.api.types.is_numeric_dtype(series)
        and not pd.api.types.is_bool_dtype(series)
    )


def select(runs: pd.DataFrame, filters: Mapping[str, Any]) -> pd.DataFrame:
    """Rows of `runs` whose column equals the value of each filter (None: null); `ALL` keeps every row."""
    mask = np.ones(len(runs), dtype=bool)
    for column, value in filters.items():
        if value == ALL or column not in runs:
            continue
        mask &= (runs[column].isna() if value is None else runs[column] == value).to_numpy(
            bool, na_value=False
        )
    return runs if mask.all() else runs[mask]


def sweep_summary(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per sweep: runs, runs by status (ok, diverged, error), ok runs by phase, and last_update (the
    newest ``created_at``, NaT when no run is stored)."""
    rows = []
    for name, runs in frames.items():
        status = runs["status"].value_counts()
        phase = runs["phase"].value_counts()
        row = {"sweep": name, "runs": len(runs)}
        row.update({s: int(status.get(s, 0)) for s in ("ok", "diverged", "error")})
        row.update({p: int(phase.get(p, 0)) for p in PHASES})
        row["last_update"] = runs["created_at"].max() if len(runs) else pd.NaT
        rows.append(row)
    columns = ["sweep", "runs", "ok", "diverged", "error", *PHASES, "last_update"]
    return pd.DataFrame(rows, columns=columns)


def message_figure(text: str, height: int = 380) -> dict:
    """An empty figure that says `text` (a view that cannot be drawn, and why)."""
    note = {"text": text, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}
    hidden = {"visible": False}
    layout = {"annotations": [note], "xaxis": hidden, "yaxis": hidden, "height": height, "font": FONT}
    return {"data": [], "layout": {**layout, "plot_bgcolor": "white", "margin": margin()}}


def margin(b: int = 50) -> dict:
    """Plot margins (px) of a live figure, `b` at the bottom."""
    return {"l": 70, "r": 20, "t": 60, "b": b}


def log_ticks(lo: float, hi: float) -> list[float]:
    """log10 positions of 1, 2, 5 × 10^k within [lo, hi] (log10 units; only 10^k past four decades); the
    ends when fewer than two."""
    mantissas = (1,) if hi - lo > 4 else (1, 2, 5)
    ticks = [
        math.log10(m * 10**e)
        for e in range(math.floor(lo), math.ceil(hi) + 1)
        for m in mantissas
        if lo - 1e-9 <= math.log10(m * 10**e) <= hi + 1e-9
    ]
    return ticks if len(ticks) >= 2 else [math.log10(float(f"{10**v:.2g}")) for v in (lo, hi)]


def _subset(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    if len(frame) <= n:
        return frame
    rows = np.sort(np.random.default_rng(0).choice(len(frame), n, replace=False))
    return frame.iloc[rows]


def scaling_figure(runs: pd.DataFrame, x: str, group: str | None = None, n_boot: int = 30) -> dict:
    """step_gen of each ok run against numeric column `x` (log scale) with the censored exponential fit
    ``fit_scaling`` (log step_gen = a − b·x; censored runs enter as censored, drawn as open triangles at
    their steps_run) and its bootstrap band (`n_boot` resamples), one fit per value of `group`. At most
    `MAX_POINTS` runs are drawn (a fixed random subset of each group); every run enters the fits."""
    if not numeric(runs, x):
        return message_figure(f"no scaling fit: {x!r} is not a numeric column")
    ok = runs[runs["status"] == "ok"]
    if ok.empty:
        return message_figure("no finished runs (status ok) in this selection")
    groups = [(None, ok)] if group is None else list(ok.groupby(group, sort=True, dropna=False))
    if len(groups) > len(_GROUP_COLORS):
        return message_figure(
            f"no scaling fit: {group} has {len(groups)} values, one fit each would draw more than "
            f"{len(_GROUP_COLORS)}; choose another y axis"
        )
    width = 0.12 * np.diff(np.unique(ok[x].to_numpy(float))).min(initial=1.0)
    data, shown, fitted = [], 0, []
    for k, (value, g) in enumerate(groups):
        color = "#333333" if group is None else _GROUP_COLORS[k]
        label = "all runs" if group is None else f"{group}={fmt(plain(value))}"
        dodge = (k / max(len(groups) - 1, 1) - 0.5) * width if len(groups) > 1 else 0.0
        drawn = _subset(g, MAX_POINTS // len(groups))
        shown += len(drawn)
        gen, cens = drawn[drawn["step_gen"].notna()], drawn[drawn["step_gen"].isna()]
        common = {"type": "scatter", "mode": "markers", "legendgroup": label, "showlegend": False}
        data.append(
            {
                **common,
                "x": (gen[x].astype(float) + dodge).tolist(),
                "y": gen["step_gen"].astype(float).tolist(),
                "marker": {"color": color, "size": 6, "opacity": 0.8},
                "name": f"{label}: generalized",
                "hovertemplate": f"{x}=%{{x:.3g}}<br>step_gen %{{y:,}}<extra>{label}</extra>",
            }
        )
        data.append(
            {
                **common,
                "x": (cens[x].astype(float) + dodge).tolist(),
                "y": cens["steps_run"].astype(float).tolist(),
                "marker": {"symbol": "triangle-up-open", "color": color, "size": 8},
                "name": f"{label}: censored",
                "hovertemplate": f"{x}=%{{x:.3g}}<br>not by step %{{y:,}}<extra>{label}</extra>",
            }
        )
        try:
            fit = fit_scaling(g, x=x, n_boot=n_boot)
        except (UserError, RuntimeError, ArithmeticError):  # too little data, or no convergence
            reason = "none generalized" if g["step_gen"].isna().all() else f"one value of {x}"
            if g[x].nunique() > 1 and g["step_gen"].notna().any():
                reason = "did not converge"
            missing = {**common, "x": [None], "y": [None], "showlegend": True, "marker": {"color": color}}
            data.append({**missing, "name": f"{label}: no fit ({reason})"})
            continue
        grid = np.linspace(g[x].min(), g[x].max(), 60)
        weak = g.loc[g["step_gen"].notna(), x].nunique() < 2  # as in grokscan.viz.lines
        band = fit.band(grid) if n_boot and not weak else None
        if band is not None:
            edge = {"type": "scatter", "mode": "lines", "line": {"width": 0}, "legendgroup": label}
            data.append({**edge, "x": grid.tolist(), "y": band[0].tolist(), "showlegend": False})
            fill = f"rgba({int(color[1:3], 16)},{int(color[3:5], 16)},{int(color[5:7], 16)},0.15)"
            data.append(
                {**edge, "x": grid.tolist(), "y": band[1].tolist(), "fill": "tonexty", "fillcolor": fill}
                | {"showlegend": False, "hoverinfo": "skip"}
            )
        lo, hi = fit.b_ci
        fitted_line = fit.predict(grid)
        fitted.append(fitted_line)
        ci = f" [{lo:.3g}, {hi:.3g}]" if np.isfinite([lo, hi]).all() else ""
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": grid.tolist(),
                "y": fitted_line.tolist(),
                "line": {"color": color, "width": 1.4 if weak else 2, "dash": "dash" if weak else "solid"},
                "legendgroup": label,
                "name": f"{label}: b = {fit.b:.3g}{ci}" + (" (generalized at one x: weak)" if weak else ""),
                "hovertemplate": f"{x}=%{{x:.3g}}<br>fitted median %{{y:,.0f}}<extra>{label}</extra>",
            }
        )
    budget = float(ok["steps_run"].max())
    times = pd.concat([ok["step_gen"], ok["steps_run"]]).dropna().to_numpy(float)
    times = times[times > 0]
    if fitted and len(times):  # the fitted lines too, up to 10x past the data
        line = np.concatenate(fitted)
        line = line[np.isfinite(line) & (line > 0)]
        times = np.concatenate([times, np.clip(line, times.min() / 10, times.max() * 10)])
    y_lo, y_hi = (math.log10(times.min() / 1.5), math.log10(times.max() * 1.5)) if len(times) else (0.0, 4.0)
    ticks = log_ticks(y_lo, y_hi)
    subtitle = f"{len(ok):,} ok runs" + (f", {shown:,} drawn" if shown < len(ok) else "")
    subtitle += f"; ● generalized, △ censored (not by that step); dotted: budget ({budget:,.0f} steps)"
    layout = {
        "title": {"text": f"step_gen vs {x}: censored fit exp(a − b·{x})<br><sup>{subtitle}</sup>"},
        "xaxis": {"title": {"text": x}, "zeroline": False},
        "yaxis": {
            "title": {"text": "step_gen (steps)"},
            "type": "log",
            "range": [y_lo, y_hi],
            "tickvals": [10**t for t in ticks],
            "ticktext": [steps_text(10**t) for t in ticks],
        },
        "shapes": [
            {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": budget, "y1": budget}
            | {"line": {"color": "#888888", "dash": "dot", "width": 1.2}}
        ],
        "legend": {"orientation": "h", "y": -0.2, "font": {"size": 11}},
        "height": 460,
        "margin": margin(90),
        "plot_bgcolor": "white",
        "font": FONT,
    }
    return {"data": data, "layout": layout}


def curves_figure(runs: pd.DataFrame, curves: pd.DataFrame, title: str) -> dict:
    """Train and validation accuracy against log-scaled steps, one pair of lines per run of `runs` (all
    train lines in `TRAIN_COLOR`, validation in `VAL_COLOR`; a run's lines share its run_id as legend
    group), with step_fit and step_gen marked on them."""
    drawn = [c for c in ("train_acc", "val_acc") if c in curves]
    if runs.empty or curves.empty or not drawn:
        return message_figure(f"{title}<br>no stored accuracy curves for these runs")
    curves = curves[curves["step"] > 0]
    data = []
    for run in runs.itertuples(index=False):
        c = curves[curves["run_id"] == run.run_id]
        if c.empty:
            continue
        name = f"seed {run.seed} · {run.phase or run.status} · {run.run_id[:8]}"
        for column, color, mark in (
            ("train_acc", TRAIN_COLOR, "step_fit"),
            ("val_acc", VAL_COLOR, "step_gen"),
        ):
            if column not in drawn:
                continue
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "x": c["step"].tolist(),
                    "y": [None if v != v else v for v in c[column].tolist()],
                    "line": {"color": color, "width": 1.6},
                    "opacity": 0.85,
                    "legendgroup": run.run_id,
                    "name": f"{'train' if column == 'train_acc' else 'val'} · {name}",
                    "hovertemplate": f"step %{{x:,}}<br>{column} %{{y:.3f}}<extra>{name}</extra>",
                }
            )
            at = getattr(run, mark)
            if at is not None and at is not pd.NA and at > 0:
                data.append(
                    {
                        "type": "scatter",
                        "mode": "markers",
                        "x": [int(at)],
                        "y": [1.0],
                        "marker": {"symbol": "diamond", "color": color, "size": 8},
                        "legendgroup": run.run_id,
                        "showlegend": False,
                        "hovertemplate": f"{mark} %{{x:,}}<extra>{name}</extra>",
                    }
                )
    if not data:
        return message_figure(f"{title}<br>no stored accuracy curves for these runs")
    steps = curves["step"].to_numpy(float)
    ticks = log_ticks(math.log10(steps.min()), math.log10(steps.max())) if len(steps) else []
    layout = {
        "title": {"text": f"{title}<br><sup>orange: train, blue: validation; ◆ step_fit / step_gen</sup>"},
        "xaxis": {
            "title": {"text": "step"},
            "type": "log",
            "tickvals": [10**t for t in ticks],
            "ticktext": [steps_text(10**t) for t in ticks],
        },
        "yaxis": {"title": {"text": "accuracy"}, "range": [-0.02, 1.05]},
        "legend": {"font": {"size": 10}},
        "height": 460,
        "margin": margin(),
        "plot_bgcolor": "white",
        "font": FONT,
    }
    return {"data": data, "layout": layout}
