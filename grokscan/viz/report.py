"""One self-contained HTML report of a sweep: its definition, counts, phase and time maps, the scaling fit,
a few curves, and how to load the Parquet tables. Images are embedded as base64 PNG; the page needs no
network and no JavaScript, so it can be mailed or attached to a paper's supplement as one file."""

from __future__ import annotations

import base64
import html
import io
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from grokscan.config import FIELD_NAMES, SEED_FIELDS
from grokscan.errors import UserError
from grokscan.results.analysis import fit_scaling, phase_table
from grokscan.results.phases import DEFAULT_GAP, DEFAULT_HORIZON, PHASES
from grokscan.results.store import load_curves, load_runs
from grokscan.viz.figures import phase_diagram
from grokscan.viz.lines import pick_runs
from grokscan.viz.positions import pick_position_runs
from grokscan.viz.progress_panels import CAPTION, progress_rows
from grokscan.viz.style import grid_axes, varying_columns
from grokscan.viz.tickets import is_ticket_sweep

FIT_COLUMNS = ("a", "a_lo", "a_hi", "b", "b_lo", "b_hi", "slowdown_per_minus_0_1", "n", "n_censored")
_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em }
h1 { font-size: 1.6em } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd }
table { border-collapse: collapse; margin: .6em 0; font-size: 13px }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap }
th { background: #f6f6f6 } td:last-child { white-space: normal }
td.l, th.l { text-align: left } img { max-width: 100%; height: auto; display: block; margin: .6em 0 }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto } .note { color: #666 } code { font-size: 13px }
"""


def load_sweep(
    results_dir: str, sweep: str | None = None, gap: int = DEFAULT_GAP, threshold: float | None = None
) -> tuple[str, pd.DataFrame]:
    """(name, runs) of one sweep under `results_dir`, phases named with `gap`, step_fit / step_gen at
    `threshold` (None: the runs' own; `load_runs`); `sweep` may be None when the directory holds one.

    Raises:
        UserError: nothing stored, an unknown sweep, several sweeps and none named, or a bad gap or threshold.
    """
    if sweep is not None:
        runs = load_runs(results_dir, sweep, gap=gap, threshold=threshold)
        if not runs.empty:
            return sweep, runs
    names = sorted(load_runs(results_dir, gap=gap)["sweep"].unique())
    if not names:
        raise UserError(f"no runs stored under {results_dir} (expected {results_dir}/runs/sweep=NAME/)")
    if sweep is not None:
        raise UserError(f"no sweep {sweep!r} under {results_dir}; sweeps there: {', '.join(names)}")
    if len(names) > 1:
        listed = ", ".join(names)
        raise UserError(f"{results_dir} holds {len(names)} sweeps ({listed}): pick one with --sweep")
    return names[0], load_runs(results_dir, names[0], gap=gap, threshold=threshold)


def fit_table(
    runs: pd.DataFrame, x: str = "frac", by: str | None = None, budget: int | None = None, n_boot: int = 200
) -> pd.DataFrame:
    """One censored exponential fit of step_gen against `x` per value of `by` (default: the next config
    column that varies, so that e.g. weight decays are never pooled into one fit).

    Columns: `by` (when grouping), a, b and their 95% bootstrap CIs (a_lo, a_hi, b_lo, b_hi),
    slowdown_per_minus_0_1 (factor on step_gen when x drops by 0.1), n, n_censored, `<x>_at_budget` (x whose
    predicted median step_gen equals the budget), method, n_boot and n_boot_failed (bootstrap resamples
    drawn, and those with no finite fit: see `bootstrap_note`), and note (why a group could not be fit).

    Raises:
        UserError: an unknown column (see `grid_axes`).
    """
    x, by = grid_axes(runs, x, by)
    groups = [(None, runs)] if by is None else list(runs.groupby(by, sort=True))
    rows = []
    for value, group in groups:
        row: dict = {} if by is None else {by: value}
        try:
            fit = fit_scaling(group, x=x, budget=budget, n_boot=n_boot)
        except (UserError, RuntimeError, ArithmeticError) as err:  # too little data, or no convergence
            rows.append({**row, "note": str(err)})
            continue
        (a_lo, a_hi), (b_lo, b_hi) = fit.a_ci, fit.b_ci
        values = (fit.a, a_lo, a_hi, fit.b, b_lo, b_hi, fit.slowdown_per_minus_0_1, fit.n, fit.n_censored)
        row.update(zip(FIT_COLUMNS, values, strict=True))
        boot = {"n_boot": fit.n_boot, "n_boot_failed": fit.n_boot_failed}
        rows.append({**row, f"{x}_at_budget": fit.x_at_budget, "method": fit.method, **boot, "note": ""})
    columns = [*([by] if by else []), *FIT_COLUMNS, f"{x}_at_budget", "method", "n_boot", "n_boot_failed"]
    return pd.DataFrame(rows).reindex(columns=[*columns, "note"])


def bootstrap_note(table: pd.DataFrame) -> str:
    """One sentence on the bootstrap resamples of `fit_table`'s fits that had no finite fit, or "" when
    none failed (said once for all groups, instead of a warning per fit)."""
    failed = table[table["n_boot_failed"].fillna(0) > 0]
    if failed.empty:
        return ""
    by = table.columns[0] if table.columns[0] != "a" else None
    parts = []
    for _, row in failed.iterrows():
        value = None if by is None else f"{row[by]:g}" if isinstance(row[by], float) else str(row[by])
        parts.append(
            f"{int(row['n_boot_failed'])} of {int(row['n_boot'])}" + (f" at {by}={value}" if by else "")
        )
    return (
        f"Bootstrap resamples with no finite fit: {', '.join(parts)} (no generalized run or a single x in "
        "the resample, or a fit that ran off to zero spread); the CIs use the rest."
    )


def format_fit_table(table: pd.DataFrame) -> pd.DataFrame:
    """`fit_table` as text: estimates with their CIs, the slowdown as a factor, counts as integers."""

    def num(v: object, spec: str = ".3g") -> str:
        return "" if pd.isna(v) else format(v, spec)

    out = pd.DataFrame(index=table.index)
    for column in table.columns[: list(table.columns).index("a")]:
        out[column] = table[column].map(lambda v: f"{v:g}" if isinstance(v, float) else str(v))
    for p in ("a", "b"):
        ci = [
            f"[{num(lo)}, {num(hi)}]" if pd.notna(lo) else ""
            for lo, hi in zip(table[f"{p}_lo"], table[f"{p}_hi"], strict=True)
        ]
        out[p], out[f"{p} 95% CI"] = table[p].map(num), ci
    out["slowdown per -0.1"] = table["slowdown_per_minus_0_1"].map(
        lambda v: "" if pd.isna(v) else f"x{v:.3g}"
    )
    out["n"], out["n censored"] = (table[c].map(lambda v: num(v, ".0f")) for c in ("n", "n_censored"))
    at = next(c for c in table.columns if c.endswith("_at_budget"))
    out[at.replace("_", " ")] = table[at].map(num)
    out["method"], out["note"] = table["method"].fillna("no fit"), table["note"].fillna("")
    return out


def _png(fig: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, metadata={"Software": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _figure(runs: pd.DataFrame, kind: str, **kwargs) -> str:
    """The `kind` figure as an <img> whose alt text is "<kind> figure", or a note saying why there is none."""
    try:
        return _png(phase_diagram(runs, kind=kind, **kwargs), f"{kind} figure")
    except UserError as err:
        return f'<p class="note">No {kind} figure: {html.escape(str(err))}.</p>'


def _progress_caption(curves: pd.DataFrame) -> str:
    return f'<p class="note">{CAPTION}</p>' if progress_rows(curves) else ""


def _table(frame: pd.DataFrame, index: bool = False) -> str:
    return frame.to_html(index=index, border=0, na_rep="", escape=True)


def _definition(runs: pd.DataFrame) -> str:
    varied = [c for c in FIELD_NAMES if c in runs and runs[c].nunique(dropna=False) > 1]
    rows = []
    for c in varied:
        values = ", ".join(str(v) for v in sorted(runs[c].dropna().unique()))
        values += " (and null)" if runs[c].isna().any() else ""
        rows.append(f'<tr><th class="l">{c}</th><td class="l">{html.escape(values)}</td></tr>')
    axes = [c for c in varied if c not in SEED_FIELDS]
    fixed = [
        f"{c}={runs[c].dropna().iloc[0]}" for c in FIELD_NAMES if c not in varied and runs[c].notna().any()
    ]
    return (
        f"<p>Grid: {html.escape(' × '.join(axes) or 'a single point')}"
        f"{' × seeds' if set(SEED_FIELDS) & set(varied) else ''}.</p>"
        f"<table><tr><th class='l'>varied</th><th class='l'>values</th></tr>{''.join(rows)}</table>"
        f"<p><b>Fixed settings</b> (columns with one value; null ones left out): "
        f"<code>{html.escape(', '.join(fixed))}</code></p>"
    )


def _counts(runs: pd.DataFrame, gap: int, threshold: float | None) -> str:
    status = runs["status"].value_counts().rename_axis("status").rename("runs").reset_index()
    order = [p for p in PHASES if (runs["phase"] == p).any()]
    phase = runs["phase"].value_counts().reindex(order).rename_axis("phase").rename("runs").reset_index()
    failed = int(runs["phase"].isna().sum())
    runs_have = "1 run has" if failed == 1 else f"{failed} runs have"
    extra = f"<p class='note'>{runs_have} no phase (diverged or error).</p>" if failed else ""
    at = "each run's own threshold" if threshold is None else f"accuracy {threshold:g}"
    rule = (
        f"<p class='note'>Fit and generalized at {at}. Grokking: generalized more than gap = {gap:,} steps "
        "after fitting; within it, comprehension. A run that fit but did not generalize is memorization "
        f"only after training more than gap steps past fitting and at least {DEFAULT_HORIZON:g}× its "
        "step_fit; before that it is undetermined (analysis parameters: <code>gap=</code>, "
        "<code>threshold=</code>, <code>horizon=</code>).</p>"
    )
    return f"<div style='display:flex;gap:3em'>{_table(status)}{_table(phase)}</div>{extra}{rule}"


def _scaling(runs: pd.DataFrame) -> str:
    if "frac" not in varying_columns(runs):
        hint = "<code>grokscan fit --x COL</code> fits against another column"
        return f"<p class='note'>No fit: frac does not vary in this sweep ({hint}).</p>"
    table = fit_table(runs, x="frac")
    if table["b"].isna().all():
        reasons = "; ".join(sorted(set(table["note"])))
        return f"<p class='note'>No fit is possible: {html.escape(reasons)}</p>"
    caption = (
        "<p>Model: log step_gen = a − b·frac, fit with right-censoring (runs that never generalized count as "
        "&gt; their last step); 95% bootstrap CIs. “slowdown per −0.1” is the factor by which the median "
        "step_gen grows when frac drops by 0.1.</p>"
    )
    note = bootstrap_note(table)
    note = f"<p class='note'>{html.escape(note)}</p>" if note else ""
    return caption + _table(format_fit_table(table)) + note + _figure(runs, "scaling", x="frac")


def _tickets(runs: pd.DataFrame) -> str:
    """The ticket comparison of a sweep with derived runs (Grokking Tickets), else ""."""
    if not is_ticket_sweep(runs):
        return ""
    caption = (
        "<p>Grokking Tickets (Minegishi et al.): each derived run restarts from its parent's init with a "
        "mask from the parent's final weights: the ticket (magnitude), a random mask of the same per-layer "
        "sparsity, and dense nets rescaled to the ticket's L2 / L1 norm; the dense net itself as a line. "
        "Median step_gen over seeds; open markers: more than half never generalized (their budget).</p>"
    )
    return f"<h2>Grokking Tickets</h2>{caption}{_figure(runs, 'tickets')}"


def _positions(results_dir: str, name: str, runs: pd.DataFrame) -> str:
    """The per-position section of a sweep with sequence runs (those have a ``regime``), else ""."""
    if "regime" not in runs or runs["regime"].isna().all():
        return ""
    curves = load_curves(results_dir, name, run_ids=pick_position_runs(runs))
    caption = (
        "<p>Loss at each answer position (for add_digits: each digit of the sum, position 0 the units "
        "digit) against steps, validation solid and training dotted, log scales; the infinite-data run "
        "first. A task with a phase change shows each position dropping on its own; with finite data "
        "the training loss falls first and validation follows after a delay (grokking). Tidy data: "
        "<code>grokscan.results.positions.load_positions(...)</code>.</p>"
    )
    return f"<h2>Loss per answer position</h2>{caption}{_figure(runs, 'positions', curves=curves)}"


def write_report(
    results_dir: str,
    sweep: str | None = None,
    output: str | os.PathLike | None = None,
    gap: int = DEFAULT_GAP,
    threshold: float | None = None,
) -> Path:
    """Write the HTML report of `sweep` (None: the only sweep under `results_dir`) to `output` (default
    `<sweep>_report.html`) and return its path; phases are named with `gap` steps, step_fit / step_gen at
    `threshold` (`load_runs`). Figures that cannot be drawn become a note saying why.

    Raises:
        UserError: as `load_sweep`.
    """
    name, runs = load_sweep(results_dir, sweep, gap, threshold)
    out = Path(output if output is not None else f"{name}_report.html")
    curves = load_curves(results_dir, name, run_ids=pick_runs(runs))
    try:
        x, y = grid_axes(runs)
        cells = _table(phase_table(runs, x, y))
    except UserError as err:
        cells = f"<p class='note'>{html.escape(str(err))}</p>"
    where = os.path.abspath(results_dir) if "://" not in results_dir else results_dir
    args = f"{json.dumps(where)}, sweep={json.dumps(name)}"
    phase_args = ("" if gap == DEFAULT_GAP else f", gap={gap}") + (
        "" if threshold is None else f", threshold={threshold!r}"
    )
    snippet = (
        f"import grokscan\nruns = grokscan.load_runs({args}{phase_args})      # one row per run\n"
        f"curves = grokscan.load_curves({args})  # one row per evaluation\n"
    )
    if varying_columns(runs):
        snippet += f'\nruns.groupby({json.dumps(varying_columns(runs))})["step_gen"].median()'

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = f"""<h1>grokscan sweep <code>{html.escape(name)}</code></h1>
<p>{len(runs)} runs, {int(runs["step_gen"].notna().sum())} generalized. Report written {now}.</p>
<h2>Definition</h2>{_definition(runs)}
<h2>Runs by status and phase</h2>{_counts(runs, gap, threshold)}
<h2>Phase diagram</h2>{_figure(runs, "phase")}
<h2>Time to generalize</h2>{_figure(runs, "time")}
<details><summary>Per-cell table</summary>{cells}</details>
<h2>Scaling of step_gen with the training fraction</h2>{_scaling(runs)}
<h2>Curves</h2>{_figure(runs, "curves", curves=curves)}{_progress_caption(curves)}
{_positions(results_dir, name, runs)}{_tickets(runs)}
<h2>Data</h2><p>Parquet tables: <code>{html.escape(where)}/runs/sweep={html.escape(name)}/</code> and
<code>{html.escape(where)}/curves/sweep={html.escape(name)}/</code>. Load them with pandas:</p>
<pre>{html.escape(snippet, quote=False)}</pre>"""
    head = f'<meta charset="utf-8"><title>grokscan: {html.escape(name)}</title><style>{_CSS}</style>'
    page = f'<!doctype html>\n<html lang="en"><head>{head}</head>\n<body>\n{body}\n</body></html>\n'
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
