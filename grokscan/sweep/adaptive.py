"""Adaptive sweeps: a search algorithm proposes the runs instead of a full grid (no ray import here; the
Tune side is `grokscan.sweep.search_runner`, the file side `grokscan.sweep.adaptive_space`).

Two kinds, both declared in a search-space file with `search_alg = ...`:

- A Ray Tune searcher (e.g. `OptunaSearch()`): `param_space` holds fixed values and sampled domains
  (`tune.loguniform`, `tune.choice`, ...); each trial trains one run; the searcher minimizes (or maximizes)
  `metric` over `num_samples` runs. `tune.grid_search` cannot be converted to a searcher's space.
- `CriticalFraction` (grokscan's own): per cell of the other grid axes, bisects a sampled fraction
  (`"frac": tune.uniform(lo, hi)`) for the critical data fraction, where at least half of the seeds
  generalize within the budget, to within ±tol; each proposal trains every seed of one point as one pack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from grokscan.config import RunConfig
from grokscan.errors import UserError
from grokscan.result import RunResult

# Objective of a run for a searcher. A run that never reached the step (censored, diverged or failed)
# counts as CENSORED_PENALTY x its budget: worse than any run that got there within the budget.
METRICS = {"step_gen": "min", "step_fit": "min", "val_acc": "max", "train_acc": "max"}
CENSORED_PENALTY = 2.0


def objective(metric: str, run: Mapping[str, Any]) -> float:
    """The value a searcher sees for one run, from its row in the runs table (or the same keys): step_gen /
    step_fit, or CENSORED_PENALTY x `steps` when never reached; final_val_acc / final_train_acc (0 if NaN)."""
    if metric in ("step_gen", "step_fit"):
        value = run.get(metric)
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        return CENSORED_PENALTY * float(run["steps"]) if missing else float(value)
    value = run.get(f"final_{metric}")
    return float(value) if value is not None and math.isfinite(value) else 0.0


def run_objective(metric: str, result: RunResult) -> float:
    """`objective` of a RunResult."""
    finals = {f"final_{k}": v for k, v in result.final.items()}
    return objective(
        metric,
        {"step_gen": result.step_gen, "step_fit": result.step_fit, "steps": result.config.steps, **finals},
    )


@dataclass
class Search:
    """An adaptive sweep as the space file declares it, validated."""

    alg: Any  # a Ray Tune Searcher, or a CriticalFraction
    fixed: dict[str, Any]  # fixed RunConfig fields
    domains: dict[str, Any]  # key -> Ray Tune sampled domain
    grid: dict[str, list[Any]] = field(default_factory=dict)  # CriticalFraction only: cells and seeds
    num_samples: int | None = None  # Tune searchers: runs in all (stored ones count)
    metric: str = "step_gen"
    mode: str = "min"

    @property
    def critical(self) -> bool:
        return isinstance(self.alg, CriticalFraction)


@dataclass
class _Cell:
    values: dict[str, Any]  # the cell's grid values (e.g. weight_decay)
    lo: float
    hi: float
    shares: dict[float, float] = field(default_factory=dict)  # fraction -> share of seeds generalized
    pending: set[float] = field(default_factory=set)
    status: str = "searching"  # searching | found | below range | above range | failed


class CriticalFraction:
    """Bisection for the critical fraction of each cell: the least `key` value at which at least half of the
    seeds generalize (step_gen within the budget), assuming more data never hurts (Power et al. 2022).

    Evaluates the range's two ends first: a cell that generalizes at `lo` is "below range", one that does not
    at `hi` is "above range". Otherwise it bisects until the bracket is at most 2 x tol wide and reports its
    midpoint: the boundary to ±tol. Points are snapped to a grid of `tol / 4` so that reruns and cells share
    run_ids. A dense grid locating the boundary to ±tol needs (hi - lo) / (2 tol) + 1 points per cell; this
    needs 2 + ceil(log2((hi - lo) / (2 tol))).
    """

    def __init__(self, tol: float = 0.025, key: str = "frac") -> None:
        if not (isinstance(tol, (int, float)) and 0 < tol < 0.5):
            raise UserError(f"CriticalFraction(tol={tol!r}): tol must be a number in (0, 0.5)")
        self.tol, self.key = float(tol), key
        self.cells: list[_Cell] = []
        self.seeds: list[dict[str, Any]] = [{}]
        self.fixed: dict[str, Any] = {}

    def bind(self, fixed: dict, lo: float, hi: float, cells: list[dict], seeds: list[dict]) -> None:
        """Set the search up: fixed fields, the key's range, the grid cells and the seed combinations."""
        self.fixed, self.seeds = fixed, seeds or [{}]
        self.cells = [_Cell(dict(c), lo, hi) for c in cells or [{}]]

    def _snap(self, x: float) -> float:
        step = self.tol / 4
        return round(round(x / step) * step, 10)

    def configs(self, cell: int, x: float) -> list[RunConfig]:
        """The runs of one point: every seed combination at key = x in that cell."""
        base = {**self.fixed, **self.cells[cell].values, self.key: x}
        return [RunConfig.from_dict({**base, **s}) for s in self.seeds]

    def propose(self) -> tuple[int, float] | None:
        """(cell, x) to evaluate next, or None while every searching cell waits for its points. Both ends of
        a cell's range may be in flight at once; a midpoint needs both ends' outcomes."""
        for i, c in enumerate(self.cells):
            if c.status != "searching":
                continue
            for end in (c.lo, c.hi):
                if end not in c.shares and end not in c.pending:
                    c.pending.add(end)
                    return i, end
            if not c.pending:  # both ends known
                x = self._snap((c.lo + c.hi) / 2)
                c.pending.add(x)
                return i, x
        return None

    def observe(self, cell: int, x: float, generalized: Sequence[bool | None]) -> None:
        """Outcome of a point: per seed, whether it generalized (None: the run failed)."""
        c = self.cells[cell]
        c.pending.discard(x)
        if c.status != "searching":
            return
        if any(g is None for g in generalized):
            c.status = "failed"
            return
        share = c.shares[x] = sum(generalized) / len(generalized)
        if x == c.lo:  # an end of the range; midpoints lie strictly inside the bracket
            c.status = "below range" if share >= 0.5 else c.status
        elif x == c.hi:
            c.status = "above range" if share < 0.5 else c.status
        else:
            c.lo, c.hi = (c.lo, x) if share >= 0.5 else (x, c.hi)
        if c.status == "searching" and c.lo in c.shares and c.hi in c.shares and c.hi - c.lo <= 2 * self.tol:
            c.status = "found"

    @property
    def max_runs(self) -> int:
        """Runs the search trains at most: 2 + ceil(log2((hi - lo) / (2 tol))) points per cell, every seed."""
        cell = self.cells[0]
        points = 2 + max(0, math.ceil(math.log2((cell.hi - cell.lo) / (2 * self.tol))))
        return len(self.cells) * len(self.seeds) * points

    @property
    def finished(self) -> bool:
        return all(c.status != "searching" for c in self.cells)

    def boundaries(self) -> list[dict[str, Any]]:
        """Per cell: its grid values, status, bracket, estimate ((lo + hi) / 2 when found) and points used."""
        return [
            {
                **c.values,
                "status": c.status,
                "lo": c.lo,
                "hi": c.hi,
                f"critical_{self.key}": (c.lo + c.hi) / 2 if c.status == "found" else None,
                "points": len(c.shares),
            }
            for c in self.cells
        ]
