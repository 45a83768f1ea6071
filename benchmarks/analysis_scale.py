"""Analysis at scale: load_runs, phase_table and fit_scaling on a 1,000,000-row runs table.

Builds a runs table with the store's real schema (results.schema.RUNS_SCHEMA plus final_<metric> columns)
column by column with numpy (no RunResult objects), writes it as a few fragments of one sweep under a
temporary results folder, and times each step in this one process; ratios are relative to load_runs (which
names every run's phase on load), measured side by side.

Synthetic truth: log(step_gen) = 12 - 8·frac + 0.3·N(0, 1), rounded up to the eval interval (50) and
censored at steps = 4000; weight decay only moves step_fit. 1% of runs diverge or error. The fit sees the
eval-grid step_gen (rounded up by ~eval_every/2, most in log terms where steps are few), so its b comes out a
little below 8 with an interval too narrow to cover it: that is the rounding, not the censoring.

    python benchmarks/analysis_scale.py [--rows 1000000] [--fragments 4] [--n-boot 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from grokscan.config import RunConfig
from grokscan.results.analysis import fit_scaling, phase_table
from grokscan.results.phases import DEFAULT_GAP
from grokscan.results.schema import FINAL_PREFIX, RUNS_SCHEMA, with_metrics
from grokscan.results.store import load_runs

FRACS = np.round(np.arange(0.3, 0.701, 0.05), 2)
WEIGHT_DECAYS = np.array([0.0, 0.1, 0.3, 1.0, 3.0])
# Final values of the default curve metrics, as the engine stores them (the store takes any names).
METRICS = ("train_acc", "val_acc", "train_loss", "val_loss", "weight_norm", "zero_loss_frac")
SCHEMA = with_metrics(RUNS_SCHEMA, [FINAL_PREFIX + m for m in METRICS])


def runs_table(n: int, seed: int = 0) -> pa.Table:
    """n runs of one sweep over frac × weight_decay × seed, as a SCHEMA table."""
    rng = np.random.default_rng(seed)
    cfg = RunConfig()
    i = np.arange(n)
    cells = len(FRACS) * len(WEIGHT_DECAYS)
    frac = FRACS[i % len(FRACS)]
    wd = WEIGHT_DECAYS[(i // len(FRACS)) % len(WEIGHT_DECAYS)]
    every, steps = cfg.eval_every, cfg.steps

    def on_eval_grid(t: np.ndarray) -> np.ndarray:
        return np.maximum(np.ceil(t / every), 1) * every

    gen = on_eval_grid(np.exp(12 - 8 * frac + 0.3 * rng.standard_normal(n)))
    fit = on_eval_grid(np.exp(np.log(300) - 0.3 * np.log10(wd + 0.01) + 0.5 * rng.standard_normal(n)))
    gen[gen > steps] = np.nan
    fit[fit > steps] = np.nan
    done = np.fmax(gen, fit) + cfg.patience * every
    steps_run = np.where(np.isnan(gen) | np.isnan(fit), steps, np.minimum(done, steps))
    status = rng.choice(np.array(["ok", "diverged", "error"], dtype=object), n, p=[0.99, 0.005, 0.005])
    bad = status != "ok"
    gen[bad] = np.nan
    steps_run[status == "diverged"] = rng.integers(1, steps, (status == "diverged").sum())
    steps_run[status == "error"] = np.nan
    fit[status == "error"] = np.nan

    # Config fields not varied here keep RunConfig's (normalized) defaults; inapplicable ones are null.
    columns = {k: pa.repeat(pa.scalar(v, SCHEMA.field(k).type), n) for k, v in cfg.to_dict().items()}
    columns.update(
        sweep=pa.repeat(pa.scalar("bench"), n),
        run_id=_hex_ids(rng, n),
        frac=pa.array(frac),
        weight_decay=pa.array(wd),
        seed=pa.array(i // cells),
        status=pa.array(status, pa.string()),
        error=pa.array(np.where(status == "error", "RuntimeError: synthetic", None), pa.string()),
        step_fit=pa.array(fit, pa.int64(), from_pandas=True),
        step_gen=pa.array(gen, pa.int64(), from_pandas=True),
        censored=pa.array(np.isnan(gen)),
        steps_run=pa.array(steps_run, pa.int64(), from_pandas=True),
        wall_s=pa.array(rng.uniform(1, 10, n)),
        pack_size=pa.array(np.full(n, 256)),
        device=pa.array(np.full(n, "cpu", dtype=object), pa.string()),
        host=pa.array(np.full(n, "bench", dtype=object), pa.string()),
        grokscan_version=pa.array(np.full(n, "bench", dtype=object), pa.string()),
        created_at=pa.array(np.full(n, datetime.now(timezone.utc)), SCHEMA.field("created_at").type),
        write_id=pa.array(np.full(n, uuid.uuid4().hex, dtype=object), pa.string()),
    )
    for name in METRICS:
        columns[FINAL_PREFIX + name] = pa.array(rng.uniform(0, 1, n))
    return pa.table([columns[f.name] for f in SCHEMA], schema=SCHEMA)


def _hex_ids(rng: np.random.Generator, n: int) -> pa.Array:
    """n distinct 16-hex-digit run_ids."""
    ids = np.unique(rng.integers(0, 2**63, int(n * 1.01)))
    ids = rng.permutation(ids)[:n]
    assert len(ids) == n
    return pa.array([f"{v:016x}" for v in ids.tolist()], pa.string())


def write_fragments(root: str, table: pa.Table, fragments: int) -> None:
    """The store's layout: runs/sweep=<sweep>/part-<id>.parquet, sweep in the folder name, not the file."""
    folder = os.path.join(root, "runs", "sweep=bench")
    os.makedirs(folder)
    for chunk in np.array_split(np.arange(table.num_rows), fragments):
        part = table.slice(int(chunk[0]), len(chunk)).drop_columns(["sweep"])
        pq.write_table(part, os.path.join(folder, f"part-{uuid.uuid4().hex}.parquet"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--fragments", type=int, default=4)
    parser.add_argument("--n-boot", type=int, default=20)
    args = parser.parse_args()
    print(f"device: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs (os.cpu_count)")
    print(f"python {sys.version.split()[0]}, pandas {pd.__version__}, pyarrow {pa.__version__}")

    t = time.perf_counter()
    table = runs_table(args.rows)
    with tempfile.TemporaryDirectory() as root:
        write_fragments(root, table, args.fragments)
        size = sum(e.stat().st_size for e in os.scandir(os.path.join(root, "runs", "sweep=bench")))
        print(
            f"setup: {args.rows:,} runs rows, {args.fragments} fragments, {size / 2**20:.1f} MiB, "
            f"{time.perf_counter() - t:.1f} s (not timed below)"
        )

        times: dict[str, float] = {}
        t = time.perf_counter()
        runs = load_runs(root)
        times["load_runs"] = time.perf_counter() - t
    assert len(runs) == args.rows

    t = time.perf_counter()
    cells = phase_table(runs, "frac", "weight_decay")
    times["phase_table(frac, weight_decay)"] = time.perf_counter() - t

    t = time.perf_counter()
    regrouped = phase_table(runs, "frac", "weight_decay", gap=2 * DEFAULT_GAP)
    times[f"phase_table(..., gap={2 * DEFAULT_GAP})"] = time.perf_counter() - t

    t = time.perf_counter()
    fit = fit_scaling(runs, "frac", n_boot=args.n_boot, seed=0)
    times[f"fit_scaling(frac, n_boot={args.n_boot})"] = time.perf_counter() - t

    base = times["load_runs"]
    for name, seconds in times.items():
        rate = args.rows / seconds
        print(f"{name:34s} {seconds:7.2f} s  {rate:12,.0f} rows/s  {seconds / base:5.2f}x load_runs")
    print(f"phase_table: {len(cells)} cells, {int(cells['step_gen_over_budget'].sum())} over budget")
    moved = int((cells["phase"] != regrouped["phase"]).sum())
    print(f"phase_table with gap {2 * DEFAULT_GAP} (phases named anew): {moved} cells change majority phase")
    (a_lo, a_hi), (b_lo, b_hi) = fit.a_ci, fit.b_ci
    print(
        f"fit_scaling: n={fit.n:,} ({fit.n_censored / fit.n:.0%} censored), "
        f"a={fit.a:.3f} (truth 12) CI {a_lo:.3f}..{a_hi:.3f}, "
        f"b={fit.b:.3f} (truth 8) CI {b_lo:.3f}..{b_hi:.3f}, "
        f"x_at_budget={fit.x_at_budget:.3f}"
    )
    print(f"note: fit_scaling ran only {args.n_boot} bootstrap resamples (default 200) to bound the time")
    print("note: step_gen is rounded up to the 50-step eval grid, which biases b slightly low at this n")


if __name__ == "__main__":
    main()
