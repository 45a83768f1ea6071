"""The sweep driver's memory and time per run at 20,000 runs, with short and with long curves.

Trials write their runs to the store themselves and report only ids and statuses, so the driver's memory
should not grow with the curves. Each sweep runs in a fresh driver process (its own embedded Ray) so that
peak RSS (the driver process alone, not Ray's daemons or workers) is measured per sweep; both print side
by side, with their ratio.

    python benchmarks/driver_memory.py [--runs 20000] [--pack-size 16] [--evals 3,41]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

EVAL_EVERY = 10


def _sweep(runs: int, pack_size: int, evals: int, storage: str) -> dict:
    """One sweep in this process: N tiny runs, each with `evals` evaluations (curve rows)."""
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    from grokscan.config import RunConfig
    from grokscan.sweep.ray_env import init_ray
    from grokscan.sweep.runner import run_sweep
    from grokscan.sweep.space import Sweep

    init_ray()  # Ray's own start (seconds) is not per-run time

    steps = (evals - 1) * EVAL_EVERY
    configs = [
        RunConfig(p=5, width=4, lr=1e-2, steps=steps, eval_every=EVAL_EVERY, patience=10**6, seed=s)
        for s in range(runs)
    ]
    sweep = Sweep(name="driver", path=None, configs=configs, axes={"seed": list(range(runs))})
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.perf_counter()
    outcome = run_sweep(sweep, storage, pack_size=pack_size, quiet=True)
    wall = time.perf_counter() - t
    assert outcome.written == runs and outcome.errors == 0, outcome
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "evals": evals,
        "wall_s": wall,
        "peak_rss": peak,
        "rss_before": rss_before,
        "torch": "torch" in sys.modules,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--pack-size", type=int, default=16)
    parser.add_argument("--evals", default="3,41", help="evaluations per run, one sweep each")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--storage", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(_sweep(args.runs, args.pack_size, args.child, args.storage)))
        return
    rows = []
    for evals in map(int, args.evals.split(",")):
        with tempfile.TemporaryDirectory() as storage:
            argv = [sys.executable, __file__, "--runs", str(args.runs), "--pack-size", str(args.pack_size)]
            done = subprocess.run(
                [*argv, "--child", str(evals), "--storage", storage],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode:
                sys.exit(done.stderr[-3000:])
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"device: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; embedded Ray")
    print(f"{args.runs} runs per sweep, packs of {args.pack_size}; driver process only (not Ray's daemons)")
    print(f"torch loaded in the driver: {any(r['torch'] for r in rows)}; wall excludes Ray's start")
    print(f"{'evals/run':>9} {'curve rows':>11} {'wall s':>8} {'ms/run':>7} {'driver peak RSS MB':>19}")
    for r in rows:
        ms, mb = r["wall_s"] / args.runs * 1e3, r["peak_rss"] / 1e6
        print(f"{r['evals']:9d} {r['evals'] * args.runs:11,d} {r['wall_s']:8.1f} {ms:7.2f} {mb:19.1f}")
    if len(rows) > 1:
        print(f"peak RSS ratio, longest / shortest curves: {rows[-1]['peak_rss'] / rows[0]['peak_rss']:.3f}")


if __name__ == "__main__":
    main()
