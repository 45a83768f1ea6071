"""Regenerate RESULTS.md's paper sections from stored runs of the paper presets: every number printed under
"grokscan" is computed here from a results directory, never typed by hand.

    python benchmarks/reproduce.py --size cpu [--storage DIR] [--run] [--write RESULTS.md] [--n-boot 200]

For each section of benchmarks/paper_sections.py: the paper's claim and published result (with its source),
the commands that train its runs (`search_spaces/<preset>.py` at paper size, or with the preset docstring's
"CPU size" `--set` flags, plus the section's extra arms), and from the stored runs per cell: seeds, how many
generalized, the Kaplan-Meier median step (censored runs count as "later than steps_run") with a 95%
bootstrap interval over seeds, devices, summed run time and the wall time of the `--run` that trained them;
then a verdict per compared pair: agrees (intervals apart in the paper's direction), disagrees (apart the
other way), or unresolved (overlapping intervals, or fewer than 3 seeds). `--run` first trains what is
missing (`grokscan run`, which skips stored runs). `--write FILE` replaces the text between
`<!-- reproduce.py:begin -->` and `<!-- reproduce.py:end -->` (appended when absent); otherwise the sections
are printed.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from paper_sections import SECTIONS, Cell, Section

from grokscan.errors import UserError
from grokscan.results.analysis import phase_table
from grokscan.results.store import load_curves, load_runs

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- reproduce.py:begin -->", "<!-- reproduce.py:end -->"
MIN_SEEDS = 3
TIMINGS = "reproduce_timings.json"  # in the storage directory: wall time of each section's last training


def size_flags(preset: str, size: str) -> list[str]:
    """The `--set` flags of a size: none at paper size; the docstring's "CPU size" line at cpu size."""
    if size == "paper":
        return []
    text = (ROOT / "search_spaces" / f"{preset}.py").read_text().split('"""')[1]
    found = re.search(r"CPU size[^:]*:(.*)", text, re.S)
    if found is None:
        raise SystemExit(f"search_spaces/{preset}.py documents no CPU size")
    return shlex.split(found.group(1))


def commands(section: Section, size: str, storage: str) -> list[list[str]]:
    """The `grokscan run` commands of a section: the preset at this size, then each extra arm."""
    base = ["grokscan", "run", f"search_spaces/{section.preset}.py", "--storage", storage, "--yes"]
    flags = size_flags(section.preset, size)
    return [[*base, *flags, *extra] for extra in ((), *section.extra)]


def train(section: Section, size: str, storage: str) -> None:
    """Run the section's commands; record their wall time when they trained runs."""
    before = _count(storage, section.preset)
    start = time.perf_counter()
    for cmd in commands(section, size, storage):
        subprocess.run(cmd, cwd=ROOT, check=False)
    wall, after = time.perf_counter() - start, _count(storage, section.preset)
    if after > before:
        path = Path(storage) / TIMINGS
        timings = json.loads(path.read_text()) if path.exists() else {}
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        timings[section.preset] = {"wall_s": round(wall, 1), "runs_trained": after - before, "ended": when}
        path.write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")


def _count(storage: str, preset: str) -> int:
    try:
        return len(load_runs(storage, preset))
    except UserError:
        return 0


def with_measure(
    runs: pd.DataFrame, curves: pd.DataFrame, column: str, op: str, value: float
) -> pd.DataFrame:
    """runs with step_gen replaced by the first evaluated step at which `column` is below (op "<") or above
    (">") `value` (NaN: never, so censored at steps_run)."""
    hit = curves[curves[column] < value] if op == "<" else curves[curves[column] > value]
    return runs.assign(step_gen=runs["run_id"].map(hit.groupby("run_id")["step"].min()).astype("float64"))


def km_median(runs: pd.DataFrame) -> float:
    """Kaplan-Meier median step_gen of the ok runs (censored at steps_run); inf: over half censored."""
    table = phase_table(runs.assign(_all=0), "_all", gap=0)
    median = float(table["median_step_gen"].iloc[0])
    return math.inf if math.isnan(median) and bool(table["step_gen_over_budget"].iloc[0]) else median


def median_interval(runs: pd.DataFrame, n_boot: int, seed: int = 0) -> tuple[float, float, float]:
    """(KM median, 2.5% and 97.5% percentiles of the median over seed resamples); inf: over the budget."""
    rng = np.random.default_rng(seed)
    boots = [km_median(runs.iloc[rng.integers(0, len(runs), len(runs))]) for _ in range(n_boot)]
    # Sample percentiles ("lower" / "higher"): interpolating towards an infinite median would give NaN.
    lo, hi = np.percentile(boots, 2.5, method="lower"), np.percentile(boots, 97.5, method="higher")
    return km_median(runs), float(lo), float(hi)


def keys(section: Section) -> list[str]:
    return [*section.by, *section.also, section.group]


def cell_table(runs: pd.DataFrame, section: Section, n_boot: int) -> pd.DataFrame:
    """One row per cell of the ok runs: its key values, n, generalized, median, lo, hi, budget."""
    ok = runs[runs["status"] == "ok"]
    rows = []
    for values, cell in ok.groupby(keys(section), dropna=False, sort=True):
        median, lo, hi = median_interval(cell, n_boot)
        values = values if isinstance(values, tuple) else (values,)
        rows.append(
            {
                **dict(zip(keys(section), values, strict=True)),
                "n": len(cell),
                "generalized": int(cell["step_gen"].notna().sum()),
                "val_acc": float(cell["final_val_acc"].median()),
                "median": median,
                "lo": lo,
                "hi": hi,
                "budget": int(cell["steps_run"].max()),
            }
        )
    return pd.DataFrame(rows)


def _spec(section: Section, cell: Cell) -> dict:
    return cell if isinstance(cell, dict) else {section.group: cell}


def _pick(table: pd.DataFrame, spec: dict) -> pd.DataFrame:
    for key, value in spec.items():
        column = table[key]
        if value is None:
            table = table[column.isna()]
        elif isinstance(value, float):
            table = table[np.isclose(pd.to_numeric(column, errors="coerce"), value)]
        else:
            table = table[column == value]
    return table


def verdicts(table: pd.DataFrame, section: Section) -> list[str]:
    """One line per compared pair and value of `by`: agrees, disagrees or unresolved, and why."""
    lines = []
    cells = table.groupby(list(section.by), dropna=False) if section.by else [((), table)]
    for where, cell in cells:
        label = ", ".join(f"{k}={v}" for k, v in zip(section.by, np.atleast_1d(where), strict=False))
        for fast, slow in section.pairs:
            a, b = _pick(cell, _spec(section, fast)), _pick(cell, _spec(section, slow))
            fa, sl = _label(section, fast), _label(section, slow)
            name = f"{fa} vs {sl}" + (f" at {label}" if label else "")
            if a.empty or b.empty:
                lines.append(f"- {name}: unresolved: not stored")
            elif min(a["n"].iloc[0], b["n"].iloc[0]) < MIN_SEEDS:
                lines.append(f"- {name}: unresolved at this size: fewer than {MIN_SEEDS} seeds")
            elif a["hi"].iloc[0] < b["lo"].iloc[0]:
                lines.append(f"- {name}: agrees: {fa}'s interval lies below {sl}'s")
            elif b["hi"].iloc[0] < a["lo"].iloc[0]:
                lines.append(f"- {name}: disagrees: {sl}'s interval lies below {fa}'s")
            elif math.isinf(a["lo"].iloc[0]) and math.isinf(b["lo"].iloc[0]):
                lines.append(f"- {name}: unresolved at this size: neither generalized within the budget")
            else:
                lines.append(f"- {name}: unresolved at this size: the intervals overlap")
    return lines


def _label(section: Section, cell: Cell) -> str:
    spec = _spec(section, cell)
    if len(spec) == 1:
        return _show(next(iter(spec.values())))
    return "(" + ", ".join(_show(v) for v in spec.values()) + ")"


def _show(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "model dtype"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _steps(value: float, budget: int) -> str:
    return f"> {budget:,}" if math.isinf(value) else f"{value:,.0f}"


def _what(section: Section) -> str:
    if section.measure:
        column, op, value = section.measure
        return f"first eval with {column} {op} {value:g}"
    return f"step_gen at accuracy {section.threshold:g}" if section.threshold else "step_gen"


def render(section: Section, runs: pd.DataFrame, size: str, storage: str, n_boot: int, timing: dict) -> str:
    """The markdown of one section from its stored runs (`runs` may be empty)."""
    cmds = [f"`{shlex.join(cmd)}`" for cmd in commands(section, size, storage)]
    head = [f"### {section.title}", "", f"**Paper:** {section.claim} {section.published}", ""]
    head += ["**Runs:** " + "; then ".join(cmds), ""]
    if section.note:
        head += [section.note, ""]
    if runs.empty:
        return "\n".join([*head, "Not run yet at this size.", ""])
    table = cell_table(runs, section, n_boot)
    paper = dict(section.paper)
    cols = keys(section)
    reached = "reached" if section.measure else "generalized"
    header = [*cols, reached, f"median {_what(section)} [95% CI over seeds]", "final val_acc (median)"]
    header += ["paper"] if paper else []
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    for r in table.to_dict("records"):
        ci = f"[{_steps(r['lo'], r['budget'])}, {_steps(r['hi'], r['budget'])}]"
        row = [*(_show(r[k]) for k in cols), f"{r['generalized']}/{r['n']}"]
        row += [f"{_steps(r['median'], r['budget'])} {ci}", f"{r['val_acc']:.3f}"]
        if paper:
            published = next((v for k, v in paper.items() if math.isclose(k, r[section.group])), None)
            row.append("-" if published is None else f"{published:,}")
        lines.append("| " + " | ".join(row) + " |")
    devices = ", ".join(sorted(set(runs["device"].dropna())))
    hours = runs["wall_s"].sum() / 3600
    where = f"{len(runs)} runs on {devices or 'unknown device'}, {hours:.2f} h of summed run time"
    if timing:
        where += f"; trained in {timing['wall_s'] / 60:.1f} min wall ({timing['ended']})"
    return "\n".join([*head, where + ".", "", *lines, "", "Verdict:", *verdicts(table, section), ""])


def section_runs(storage: str, section: Section) -> pd.DataFrame:
    """The section's stored runs, with step_gen at its threshold or measure (empty: nothing stored)."""
    try:
        runs = load_runs(storage, section.preset, threshold=section.threshold)
        if section.measure and not runs.empty:
            runs = with_measure(runs, load_curves(storage, section.preset), *section.measure)
        return runs
    except UserError as err:  # e.g. an unreadable fragment: say so, and report the section as not run
        print(f"{section.preset}: {err}", file=sys.stderr)
        return pd.DataFrame()


def generate(storage: str, size: str, n_boot: int) -> str:
    path = Path(storage) / TIMINGS
    timings = json.loads(path.read_text()) if path.exists() else {}
    parts = [BEGIN, f"## Paper presets at {size} size (generated by `benchmarks/reproduce.py`)", ""]
    if timings:
        total = sum(t["wall_s"] for t in timings.values()) / 60
        parts += [
            f"Training every section took {total:.0f} min of wall time in all (each section's last `--run`).",
            "",
        ]
    for section in SECTIONS:
        runs = section_runs(storage, section)
        parts.append(render(section, runs, size, storage, n_boot, timings.get(section.preset, {})))
    return "\n".join([*parts, END, ""])


def write(path: Path, text: str) -> None:
    old = path.read_text() if path.exists() else ""
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + text.rstrip("\n") + old[old.index(END) + len(END) :]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("cpu", "paper"), default="cpu")
    parser.add_argument("--storage", default=None, help="results directory (default: results/reproduce-SIZE)")
    parser.add_argument("--run", action="store_true", help="train the missing runs first (grokscan run)")
    parser.add_argument("--only", default=None, help="comma-separated presets (default: every section)")
    parser.add_argument("--write", default=None, metavar="FILE", help="update FILE (e.g. RESULTS.md)")
    parser.add_argument("--n-boot", type=int, default=200)
    args = parser.parse_args(argv)
    storage = args.storage or f"results/reproduce-{args.size}"
    if args.run:
        only = set(args.only.split(",")) if args.only else None
        for section in SECTIONS:
            if only is None or section.preset in only:
                train(section, args.size, storage)
    text = generate(storage, args.size, args.n_boot)
    if args.write:
        write(Path(args.write), text)
        print(f"wrote {args.write}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
