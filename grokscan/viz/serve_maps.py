"""Plotly grid maps of the live `serve` app: the phase map and the median step_gen map of a phase table.

Builders return plain plotly figure dicts, as `grokscan.viz.serve_figures` does (whose shared helpers they
use). Grid cells are categorical, one per value of a column in ascending order (a null value last), y growing
upwards as in `grokscan.viz.grids`. Each heatmap cell carries its config values as ``customdata`` (JSON text
``[x_value, y_value]``), which is how a click names the cell whose runs' curves to show.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from grokscan.results.phases import PHASES
from grokscan.viz.serve_figures import FONT, axis_values, log_ticks, margin, message_figure, plain
from grokscan.viz.style import OVER_BUDGET, PHASE_COLORS, fmt, steps_text

MAX_CELL_TEXT = 400  # cells past which the maps drop their per-cell labels
_VIRIDIS_R = ["#fde725", "#b5de2b", "#6ece58", "#35b779", "#1f9e89", "#26828e", "#31688e", "#3e4989"]


def _subtitle(*parts: str) -> str:
    text = "; ".join(p for p in parts if p)
    return f"<br><sup>{text}</sup>" if text else ""


def _labels(values: Sequence) -> list[str]:
    """Unique tick labels: `fmt` of each value, with the position appended where two would read the same."""
    labels = ["none" if v is None else fmt(v) for v in values]
    seen = {label for label in labels if labels.count(label) > 1}
    return [f"{label} [{i}]" if label in seen else label for i, label in enumerate(labels)]


def _cells(table: pd.DataFrame, x: str, y: str | None) -> tuple[list, list, np.ndarray, np.ndarray]:
    """(x values, y values, row index, column index) of each row of a phase table on the cell grid."""
    xs = axis_values(table[x])
    ys = [None] if y is None else axis_values(table[y])

    def index(column: str | None, values: list) -> np.ndarray:
        if column is None:
            return np.zeros(len(table), dtype=int)
        codes = {v: i for i, v in enumerate(values)}
        return np.array([codes[plain(v)] for v in table[column]], dtype=int)

    return xs, ys, index(y, ys), index(x, xs)


def _grid(shape: tuple[int, int], i: np.ndarray, j: np.ndarray, values: Sequence, empty: Any = None) -> list:
    out = [[empty] * shape[1] for _ in range(shape[0])]
    for r, c, v in zip(i.tolist(), j.tolist(), values, strict=True):
        out[r][c] = v
    return out


def _map_layout(title: str, x: str, y: str | None, xs: list, ys: list) -> dict:
    axis = {"type": "category", "showgrid": False, "zeroline": False, "automargin": True}
    return {
        "title": {"text": title, "font": {"size": 14}},
        "xaxis": {**axis, "title": {"text": x}, "tickangle": -45 if len(xs) > 8 else 0},
        "yaxis": {**axis, "title": {"text": y or ""}, "visible": y is not None},
        "plot_bgcolor": "#f2f2f2",
        "height": max(320, min(640, 40 * len(ys) + 170)),
        "margin": margin(),
        "font": FONT,
    }


def _hover(table: pd.DataFrame, x: str, y: str | None) -> list[str]:
    out = []
    for r in table.to_dict("records"):
        where = f"{x}={fmt(r[x])}" + ("" if y is None else f", {y}={fmt(r[y])}")
        phase = "no finished run" if r["phase"] is None else f"{r['phase']} ({r['phase_share']:.0%} of seeds)"
        if r["step_gen_over_budget"]:
            gen = f"> {steps_text(r['budget'])} (over half never generalized)"
        elif np.isfinite(r["median_step_gen"]):
            gen = steps_text(r["median_step_gen"])
        else:
            gen = "n/a"
        out.append(f"{where}<br>{phase}<br>median step_gen {gen}<br>{r['n']} ok, {r['n_failed']} failed")
    return out


def _customdata(table: pd.DataFrame, x: str, y: str | None) -> list[str]:
    ys = [None] * len(table) if y is None else table[y]
    return [json.dumps([plain(a), plain(b)]) for a, b in zip(table[x], ys, strict=True)]


def phase_figure(table: pd.DataFrame, x: str, y: str | None, note: str = "") -> dict:
    """Majority phase per cell of a phase table (`grokscan.results.analysis.phase_table(runs, x, y)`), in
    the fixed `PHASE_COLORS`; a cell whose seeds disagree is labelled with its majority's share."""
    if table.empty:
        return message_figure("no runs in this selection")
    xs, ys, i, j = _cells(table, x, y)
    codes = {p: k for k, p in enumerate(PHASES)}
    # Rounded down: a cell whose seeds disagree never reads 100%.
    share = [
        f"{math.floor(100 * s)}%" if m else ""
        for s, m in zip(table["phase_share"], table["mixed"], strict=True)
    ]
    scale = []
    for k, p in enumerate(PHASES):
        scale += [[k / len(PHASES), PHASE_COLORS[p]], [(k + 1) / len(PHASES), PHASE_COLORS[p]]]
    trace = _heatmap(table, x, y, (xs, ys, i, j), "phase", [codes.get(p) for p in table["phase"]], share)
    trace.update(
        zmin=-0.5,
        zmax=len(PHASES) - 0.5,
        colorscale=scale,
        colorbar={"tickvals": list(range(len(PHASES))), "ticktext": list(PHASES), "thickness": 14},
    )
    counts = table["n"] + table["n_failed"]
    k = int(counts.max())
    title = "phase (1 run per cell)" if k == 1 else f"phase (majority over ≤{k} runs per cell)"
    sub = "% marks cells whose seeds disagree (share of the majority)" if table["mixed"].any() else ""
    layout = _map_layout(title + _subtitle(note, sub), x, y, xs, ys)
    return {"data": [trace], "layout": layout}


def time_figure(table: pd.DataFrame, x: str, y: str | None, note: str = "") -> dict:
    """Median step_gen per cell of a phase table (Kaplan–Meier over seeds, log colour scale); cells where
    over half of the runs never generalized are grey and labelled "> budget" (the median is censored)."""
    if table.empty:
        return message_figure("no runs in this selection")
    xs, ys, i, j = _cells(table, x, y)
    median = table["median_step_gen"].to_numpy(float)
    over = table["step_gen_over_budget"].to_numpy(bool)
    finite = np.isfinite(median) & (median > 0)
    log = np.log10(np.where(finite, median, 1.0))
    lo, hi = (log[finite].min(), log[finite].max()) if finite.any() else (0.0, 1.0)
    if hi - lo < 0.2:
        lo, hi = lo - 0.1, hi + 0.1
    top = hi + max(0.12 * (hi - lo), 0.08) if over.any() else hi  # a grey band above the scale
    z = np.where(finite, log, np.nan)
    z[over] = top
    cut = float((hi - lo) / (top - lo))
    n = len(_VIRIDIS_R) - 1
    # The last colour exactly at `cut`: stops must not decrease, not even by one rounding error.
    stops = [[cut if k == n else cut * k / n, c] for k, c in enumerate(_VIRIDIS_R)]
    if over.any():
        stops += [[cut, OVER_BUDGET], [1.0, OVER_BUDGET]]
    ticks = log_ticks(lo, hi) if finite.any() else []
    labels = [steps_text(10**t) for t in ticks]
    if over.any():
        ticks, labels = [*ticks, (hi + top) / 2], [*labels, "> budget"]
    budget = table["budget"].to_numpy(float, na_value=np.nan)
    text = [
        f"> {steps_text(b)}" if o else (steps_text(m) if f else "")
        for m, f, o, b in zip(median, finite, over, budget, strict=True)
    ]
    trace = _heatmap(
        table, x, y, (xs, ys, i, j), "median step_gen", [None if np.isnan(v) else float(v) for v in z], text
    )
    trace.update(
        zmin=lo,
        zmax=top,
        colorscale=stops,
        colorbar={
            "tickvals": ticks,
            "ticktext": labels,
            "thickness": 14,
            "title": {"text": "median<br>step_gen", "side": "top"},
        },
    )
    sub = "> budget: over half of the runs never generalized" if over.any() else ""
    title = "median step_gen over seeds" + _subtitle(note, sub)
    return {"data": [trace], "layout": _map_layout(title, x, y, xs, ys)}


def _heatmap(
    table: pd.DataFrame, x: str, y: str | None, cells: tuple, name: str, z: list, text: list
) -> dict:
    """The heatmap trace both maps share: one value and one label per cell (`_cells`), hover text and the
    cell's runs as customdata (what a click sends back); labels only up to MAX_CELL_TEXT cells."""
    xs, ys, i, j = cells
    shape = (len(ys), len(xs))
    trace = {
        "type": "heatmap",
        "x": _labels(xs),
        "y": _labels(ys) if y is not None else [""],
        "z": _grid(shape, i, j, z),
        "xgap": 2,
        "ygap": 2,
        "hovertext": _grid(shape, i, j, _hover(table, x, y), "no runs"),
        "hovertemplate": "%{hovertext}<extra></extra>",
        "customdata": _grid(shape, i, j, _customdata(table, x, y)),
        "name": name,
    }
    if len(table) <= MAX_CELL_TEXT:
        trace.update(text=_grid(shape, i, j, text, ""), texttemplate="%{text}")
    return trace
