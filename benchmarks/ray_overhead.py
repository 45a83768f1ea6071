"""Per-run overhead of running a sweep through Ray Tune, measured side by side in one process.

Trains the same N short runs (a) directly with train_runs in this process and (b) as a sweep on the
embedded local Ray, and prints the ratio of sweep wall time to summed run time and the amortized overhead
per run: (sweep wall * parallel slots - summed run time) / N.

    python benchmarks/ray_overhead.py [--runs 256] [--pack-size 16] [--steps 100]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

from grokscan.config import RunConfig
from grokscan.engine.loop import train_runs
from grokscan.sweep.space import Sweep


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=256)
    parser.add_argument("--pack-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    configs = [
        RunConfig(p=11, width=16, lr=1e-2, steps=args.steps, eval_every=50, seed=s) for s in range(args.runs)
    ]
    sweep = Sweep(name="overhead", path=None, configs=configs, axes={"seed": list(range(args.runs))})

    t = time.perf_counter()
    train_runs(configs, pack_size=args.pack_size)
    direct = time.perf_counter() - t

    os.environ.setdefault("RAY_AUTH_MODE", "token")
    from grokscan.sweep.ray_env import init_ray
    from grokscan.sweep.runner import run_sweep

    t = time.perf_counter()
    init_ray()
    startup = time.perf_counter() - t
    import ray

    slots = int(ray.cluster_resources()["CPU"])
    with tempfile.TemporaryDirectory() as storage:
        outcome = run_sweep(sweep, storage, pack_size=args.pack_size, quiet=True)
    per_run_ms = (outcome.wall_s * slots - outcome.trained_s) / args.runs * 1e3
    print(f"device: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Ray slots {slots}")
    print(f"{args.runs} runs x {args.steps} steps, pack size {args.pack_size}")
    print(f"ray startup                      {startup:8.2f} s (once per sweep)")
    print(f"direct train_runs, one process   {direct:8.2f} s")
    print(f"sweep on Ray Tune, wall          {outcome.wall_s:8.2f} s")
    print(f"summed run time inside trials    {outcome.trained_s:8.2f} s")
    print(f"ratio sweep wall / summed run    {outcome.wall_s / outcome.trained_s:8.2f}")
    print(f"ratio sweep wall / direct        {outcome.wall_s / direct:8.2f}")
    print(f"overhead per run (amortized)     {per_run_ms:8.1f} ms")


if __name__ == "__main__":
    main()
