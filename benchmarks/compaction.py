"""Reading a long sweep's store before and after compaction: load_runs, load_curves and done_run_ids on a
sweep of 10,000 one-run writes (20,000 fragments: a runs and a curves fragment per write), then on the same
sweep compacted to one fragment per table.

Each write is `Store.write` of one `RunResult` built directly (no training): a RunConfig of the default
demo's grid (frac × weight decay × seed), a synthetic outcome and curves of a few evaluations. Every read is
timed `--repeat` times in this one process and the fastest is kept; ratios are before / after, measured
side by side. Prints the machine; asserts nothing about time.

    python benchmarks/compaction.py [--writes 10000] [--evals 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone

import pandas as pd
import pyarrow as pa

from grokscan.config import RunConfig
from grokscan.result import RunResult
from grokscan.results.store import Store, compact, load_curves, load_runs

SWEEP = "bench"


def synthetic_result(i: int, evals: int) -> RunResult:
    """Run i of a frac × weight_decay × seed grid with a made-up outcome and `evals` curve rows."""
    frac = 0.3 + 0.05 * (i % 9)
    wd = (0.0, 0.1, 0.3, 1.0, 3.0)[(i // 9) % 5]
    config = RunConfig(
        task="x+y", p=59, lr=3e-3, steps=3000, frac=round(frac, 2), weight_decay=wd, seed=i // 45
    )
    gen = None if wd == 0.0 else 50 * (1 + i % 40)
    steps = [50 * k for k in range(evals)]
    curves = {
        "step": steps,
        "train_acc": [min(1.0, k / 2) for k in range(evals)],
        "val_acc": [min(1.0, k / evals) for k in range(evals)],
        "train_loss": [1.0 / (k + 1) for k in range(evals)],
    }
    final = {k: v[-1] for k, v in curves.items() if k != "step"}
    steps_run = 3000 if gen is None else gen + 500
    return RunResult(config, "ok", 100, gen, steps_run, final, 1.0, "cpu", 1, curves=curves)


def fastest(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def fragment_count(root: str) -> int:
    return sum(len(files) for _, _, files in os.walk(root) if files)


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=10_000, help="one-run writes (2 fragments each)")
    parser.add_argument("--evals", type=int, default=4, help="curve rows per run")
    parser.add_argument("--repeat", type=int, default=3, help="timings per read (the fastest is kept)")
    args = parser.parse_args()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"grokscan compaction benchmark, {now}")
    print(f"machine: {platform.platform()}, {cpu_model()}, {os.cpu_count()} CPUs (os.cpu_count)")
    print(f"python {sys.version.split()[0]}, pandas {pd.__version__}, pyarrow {pa.__version__}")

    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        t = time.perf_counter()
        for i in range(args.writes):
            store.write(SWEEP, [synthetic_result(i, args.evals)])
        print(
            f"setup: {args.writes:,} Store.write calls of 1 run and {args.evals} curve rows each, "
            f"{fragment_count(root):,} fragments, {time.perf_counter() - t:.1f} s (not timed below)"
        )

        reads = {
            "load_runs": lambda: load_runs(root, SWEEP),
            "load_curves": lambda: load_curves(root, SWEEP),
            "Store.done_run_ids": lambda: store.done_run_ids(SWEEP),
        }
        before = {name: fastest(fn, args.repeat) for name, fn in reads.items()}
        t = time.perf_counter()
        stats = compact(root, SWEEP)
        compact_s = time.perf_counter() - t
        after = {name: fastest(fn, args.repeat) for name, fn in reads.items()}

    print(
        f"compact: {stats.fragments_before:,} -> {stats.fragments_after} fragments, {stats.rows_kept:,} runs "
        f"and {stats.curve_rows_kept:,} curve rows kept, {compact_s:.2f} s"
    )
    print(f"timing: fastest of {args.repeat}; ratio = before / after\n")
    print(f"{'read':20s} {'rows':>8s} {'before s':>9s} {'after s':>9s} {'ratio':>8s}")
    for name, (seconds, out) in before.items():
        seconds_after, out_after = after[name]
        assert len(out) == len(out_after), name  # the same rows, read from 2 fragments instead
        print(
            f"{name:20s} {len(out):8,d} {seconds:9.3f} {seconds_after:9.3f} {seconds / seconds_after:7.1f}x"
        )


if __name__ == "__main__":
    main()
