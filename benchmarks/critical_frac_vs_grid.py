"""Critical fraction by bisection (search_spaces/critical_frac.py) against the dense grid of equal resolution.

Runs both on the embedded Ray into one results directory (runs already there are reused, as `grokscan run`
does): the adaptive sweep as the file says, then the
dense grid over frac = lo, lo + 2 tol, ..., hi with the same cells and seeds (sweep name `<name>_dense`).
The grid's boundary per cell is the midpoint between the last fraction where fewer than half of the seeds
generalize and the first where at least half do (±tol, as the bisection's). Prints runs trained, wall time
and the boundary found by each, and the device.

    python benchmarks/critical_frac_vs_grid.py [--space search_spaces/critical_frac.py] [--storage DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np

from grokscan.results.store import load_runs
from grokscan.sweep.runner import run_sweep
from grokscan.sweep.space import Sweep, load_space


def dense_sweep(sweep: Sweep) -> tuple[Sweep, np.ndarray]:
    alg = sweep.search.alg
    lo, hi = alg.cells[0].lo, alg.cells[0].hi
    fracs = np.round(np.arange(lo, hi + alg.tol, 2 * alg.tol), 6)
    configs = [cfg for cell in range(len(alg.cells)) for x in fracs for cfg in alg.configs(cell, float(x))]
    axes = {**{k: v for k, v in sweep.search.grid.items()}, alg.key: list(fracs)}
    return Sweep(f"{sweep.name}_dense", sweep.path, configs, axes, resources=sweep.resources), fracs


def grid_boundary(runs, key: str, cell: dict, tol: float) -> str:
    """Midpoint between the last fraction below half generalized and the first at or above it."""
    mask = np.ones(len(runs), bool)
    for k, v in cell.items():
        mask &= runs[k].to_numpy() == v
    share = runs[mask].groupby(key)["step_gen"].apply(lambda s: s.notna().mean()).sort_index()
    above = share.index[share >= 0.5]
    if len(above) == 0:
        return "above range"
    first = above[0]
    if first == share.index[0]:
        return "below range"
    return f"{first - tol:.3f} (+-{tol})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="search_spaces/critical_frac.py")
    parser.add_argument("--storage", default=None, help="results directory (default: a new temporary one)")
    args = parser.parse_args()
    storage = args.storage or tempfile.mkdtemp(prefix="grokscan-critical-")
    sweep = load_space(args.space)
    alg = sweep.search.alg
    dense, fracs = dense_sweep(sweep)
    print(f"critical fraction: bisection vs dense grid, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"device: cpu, {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"results: {storage}")
    t0 = time.monotonic()
    adaptive = run_sweep(sweep, storage, quiet=True)
    t1 = time.monotonic()
    grid = run_sweep(dense, storage, quiet=True)
    t2 = time.monotonic()
    used = adaptive.written + adaptive.skipped
    print(f"bisection: {used} runs used ({adaptive.skipped} of them from the store), {t1 - t0:.0f} s wall")
    print(
        f"dense grid ({len(fracs)} fractions {fracs[0]}..{fracs[-1]}): {grid.written} runs, {t2 - t1:.0f} s"
    )
    print(f"runs: dense / bisection = {len(dense.configs) / max(1, used):.2f}")
    runs = load_runs(storage, dense.name)
    for found in alg.boundaries():
        cell = {k: found[k] for k in alg.cells[0].values}
        estimate = found[f"critical_{alg.key}"]
        bisect = f"{estimate:.3f} (+-{alg.tol})" if estimate is not None else found["status"]
        dense_found = grid_boundary(runs, alg.key, cell, alg.tol)
        print(f"  {cell}: bisection {bisect} in {found['points']} points; dense grid {dense_found}")


if __name__ == "__main__":
    main()
