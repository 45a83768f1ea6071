"""Regenerate RESULTS.md's per-paper sections from stored runs of the paper presets: every number printed is
computed here from a results directory, never typed by hand.

    python benchmarks/reproduce.py --size cpu [--storage DIR] [--run] [--write RESULTS.md] [--n-boot 200]

For each section: the paper's claim and published result (with its source), the command that trains its
runs (`search_spaces/<preset>.py` at paper size, or with the preset docstring's "CPU size" `--set` flags),
and from the stored runs per grid cell: seeds, how many generalized, the Kaplan-Meier median step_gen over
seeds (censored runs count as "later than steps_run") with a 95% bootstrap interval over seeds, the devices
and summed run time; then a verdict per compared pair: agrees (intervals apart in the paper's direction),
disagrees (apart the other way), or unresolved (overlapping intervals, or fewer than 3 seeds). `--run`
first trains what is missing (`grokscan run`, which skips stored runs). `--write FILE` replaces the text
between `<!-- reproduce.py:begin -->` and `<!-- reproduce.py:end -->` (appended when absent); otherwise
the sections are printed.

Skeleton: sections exist for Prieto et al. 2025, Lee et al. 2024, Nanda et al. 2023 and Omnigrok; Liu et
al. 2022's phase diagram (liu2022_phases.py) has no automatic verdict yet.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grokscan.errors import UserError
from grokscan.results.analysis import phase_table
from grokscan.results.store import load_runs

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- reproduce.py:begin -->", "<!-- reproduce.py:end -->"
MIN_SEEDS = 3


@dataclass(frozen=True)
class Section:
    """One paper's comparison. `pairs`: (value expected faster, value expected slower) of `group`,
    compared within each cell of `by`; `threshold`: the analysis accuracy of step_gen (None: the runs')."""

    preset: str
    title: str
    claim: str
    published: str
    group: str
    pairs: tuple[tuple[Any, Any], ...]
    by: tuple[str, ...] = ()
    threshold: float | None = None


SECTIONS = (
    Section(
        "prieto2025_collapse",
        "Prieto et al. 2025: a float64 loss delays softmax collapse",
        "Without weight decay a float32 softmax cross-entropy reaches exactly zero loss on most training "
        "rows and stops learning; higher precision delays the collapse, so the float64-loss run generalizes "
        "sooner.",
        "Fig. 2 (x+y mod 113, AdamW lr 5e-4, eps 1e-25, `--softmax_precision 32 | 64`): curves, no step "
        "counts in the text.",
        "loss_dtype",
        (("float64", None),),
        by=("frac",),
    ),
    Section(
        "lee2024_grokfast",
        "Lee et al. 2024: Grokfast filters against the baseline and against tuned weight decay",
        "Amplifying the slow gradient component (EMA or windowed mean) reaches 95% validation accuracy in "
        "far fewer steps than the same optimizer without it.",
        "ironjr/grokfast README.md:178-179 and 190-191: iterations to 95% validation accuracy, baseline "
        "39,890, Grokfast-MA 790, Grokfast-EMA 910.",
        "grad_filter",
        (("grokfast_ma", "none"), ("grokfast", "none")),
        by=("weight_decay",),
        threshold=0.95,
    ),
    Section(
        "nanda2023_frac",
        "Nanda et al. 2023: steps to generalize against the training fraction",
        "Less training data, later generalization.",
        "Per-fraction curves in their saved runs (progress-measures-paper saved_runs/"
        "mod_addition_frac_train_sweep.pth); not transcribed here yet.",
        "frac",
        ((0.7, 0.5), (0.5, 0.3)),
    ),
    Section(
        "omnigrok_alpha",
        "Liu et al. 2022 (Omnigrok): a large fixed weight norm delays generalization",
        "With the weight norm held at alpha times its init value, alpha near 1 generalizes and a large alpha "
        "does not, or later.",
        "MNIST landscape over alpha and data size (KindXiaoming/Omnigrok mnist/landscape): a figure, no "
        "step counts.",
        "alpha",
        ((1.0, 10.0),),
    ),
)


def size_flags(preset: str, size: str) -> list[str]:
    """The `--set` flags of a size: none at paper size; the docstring's "CPU size" line at cpu size."""
    if size == "paper":
        return []
    text = (ROOT / "search_spaces" / f"{preset}.py").read_text().split('"""')[1]
    found = re.search(r"CPU size[^:]*:(.*)", text, re.S)
    if found is None:
        raise SystemExit(f"search_spaces/{preset}.py documents no CPU size")
    return shlex.split(found.group(1))


def command(section: Section, size: str, storage: str) -> list[str]:
    flags = size_flags(section.preset, size)
    return ["grokscan", "run", f"search_spaces/{section.preset}.py", "--storage", storage, "--yes", *flags]


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


def cell_table(runs: pd.DataFrame, section: Section, n_boot: int) -> pd.DataFrame:
    """One row per (by..., group) cell of the ok runs: n, generalized, median, lo, hi, budget."""
    ok = runs[runs["status"] == "ok"]
    keys = [*section.by, section.group]
    rows = []
    for values, cell in ok.groupby(keys, dropna=False, sort=True):
        median, lo, hi = median_interval(cell, n_boot)
        values = values if isinstance(values, tuple) else (values,)
        rows.append(
            {
                **dict(zip(keys, values, strict=True)),
                "n": len(cell),
                "generalized": int(cell["step_gen"].notna().sum()),
                "median": median,
                "lo": lo,
                "hi": hi,
                "budget": int(cell["steps_run"].max()),
            }
        )
    return pd.DataFrame(rows)


def _pick(table: pd.DataFrame, key: str, value: Any) -> pd.DataFrame:
    column = table[key]
    if value is None:
        return table[column.isna()]
    if isinstance(value, float):
        return table[np.isclose(pd.to_numeric(column, errors="coerce"), value)]
    return table[column == value]


def verdicts(table: pd.DataFrame, section: Section) -> list[str]:
    """One line per compared pair and cell of `by`: agrees, disagrees or unresolved, and why."""
    lines = []
    cells = table.groupby(list(section.by), dropna=False) if section.by else [((), table)]
    for where, cell in cells:
        label = ", ".join(f"{k}={v}" for k, v in zip(section.by, np.atleast_1d(where), strict=False))
        for fast, slow in section.pairs:
            a, b = _pick(cell, section.group, fast), _pick(cell, section.group, slow)
            name = f"{_show(fast)} vs {_show(slow)}" + (f" at {label}" if label else "")
            if a.empty or b.empty:
                lines.append(f"- {name}: unresolved: not stored")
            elif min(a["n"].iloc[0], b["n"].iloc[0]) < MIN_SEEDS:
                lines.append(f"- {name}: unresolved at this size: fewer than {MIN_SEEDS} seeds")
            elif a["hi"].iloc[0] < b["lo"].iloc[0]:
                lines.append(f"- {name}: agrees: {_show(fast)}'s interval lies below {_show(slow)}'s")
            elif b["hi"].iloc[0] < a["lo"].iloc[0]:
                lines.append(f"- {name}: disagrees: {_show(slow)}'s interval lies below {_show(fast)}'s")
            else:
                lines.append(f"- {name}: unresolved at this size: the intervals overlap")
    return lines


def _show(value: Any) -> str:
    return "model dtype" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _steps(value: float, budget: int) -> str:
    return f"> {budget:,}" if math.isinf(value) else f"{value:,.0f}"


def render(section: Section, runs: pd.DataFrame, size: str, storage: str, n_boot: int) -> str:
    """The markdown of one section from its stored runs (`runs` may be empty)."""
    run = shlex.join(command(section, size, storage))
    head = [f"### {section.title}", "", f"**Paper:** {section.claim} {section.published}", "", f"`{run}`", ""]
    if runs.empty:
        return "\n".join([*head, "Not run yet at this size.", ""])
    table = cell_table(runs, section, n_boot)
    at = f"accuracy {section.threshold:g}" if section.threshold else "each run's threshold"
    keys = [*section.by, section.group]
    lines = [
        f"| {' | '.join(keys)} | generalized | median step_gen at {at} [95% CI over seeds] |",
        "| " + " | ".join(["---"] * (len(keys) + 2)) + " |",
    ]
    for r in table.to_dict("records"):
        ci = f"[{_steps(r['lo'], r['budget'])}, {_steps(r['hi'], r['budget'])}]"
        cells = " | ".join(_show(r[k]) for k in keys)
        lines.append(f"| {cells} | {r['generalized']}/{r['n']} | {_steps(r['median'], r['budget'])} {ci} |")
    devices = ", ".join(sorted(set(runs["device"].dropna())))
    hours = runs["wall_s"].sum() / 3600
    where = f"{len(runs)} runs on {devices or 'unknown device'}, {hours:.2f} h of summed run time."
    return "\n".join([*head, where, "", *lines, "", "Verdict:", *verdicts(table, section), ""])


def generate(storage: str, size: str, n_boot: int) -> str:
    parts = [BEGIN, f"## Paper presets at {size} size (generated by `benchmarks/reproduce.py`)", ""]
    for section in SECTIONS:
        try:
            runs = load_runs(storage, section.preset, threshold=section.threshold)
        except UserError as err:  # e.g. an unreadable fragment: say so, and report the section as not run
            print(f"{section.preset}: {err}", file=sys.stderr)
            runs = pd.DataFrame()
        parts.append(render(section, runs, size, storage, n_boot))
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
    parser.add_argument("--write", default=None, metavar="FILE", help="update FILE (e.g. RESULTS.md)")
    parser.add_argument("--n-boot", type=int, default=200)
    args = parser.parse_args(argv)
    storage = args.storage or f"results/reproduce-{args.size}"
    if args.run:
        for section in SECTIONS:
            subprocess.run(command(section, args.size, storage), cwd=ROOT, check=False)
    text = generate(storage, args.size, args.n_boot)
    if args.write:
        write(Path(args.write), text)
        print(f"wrote {args.write}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
