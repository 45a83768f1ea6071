"""Refill: one grokking grid with early stopping, wall time with and without refill, side by side.

Runs of a grid stop at very different steps (early stop once both accuracies stay >= 0.99, the budget for
runs that never generalize), so without refill a pack shrinks to a few stragglers while the other runs of
its shape wait for the next pack; with refill they join as members end. Same runs, same results
(asserted here: step_fit / step_gen / steps_run equal), so the ratio is pure scheduling. On CPU a pack's
step costs about members x one member's, so refill gains little there; on a GPU a step costs about the
same for 1 or 64 members, which is where refill pays.

    python benchmarks/refill.py [--device cpu|cuda] [--pack-size 8] [--seeds 4] [--steps 3000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import datetime, timezone

import torch

from grokscan.config import RunConfig
from grokscan.engine.loop import train_runs


def cpu_name() -> str:
    with open("/proc/cpuinfo") as f:
        return next(
            (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), platform.machine()
        )


def grid(args: argparse.Namespace) -> list[RunConfig]:
    """x+y mod p, MLP: weight decay 0 (memorizes: runs to the budget) to 1 (groks early), x seeds."""
    base = dict(p=args.p, steps=args.steps, eval_every=50, frac=0.5)
    wds = (0.0, 0.3, 1.0, 3.0)
    return [RunConfig(**base, weight_decay=wd, seed=s) for wd in wds for s in range(args.seeds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--device", default="cpu")
    add("--pack-size", type=int, default=8)
    add("--seeds", type=int, default=4)
    add("--p", type=int, default=47)
    add("--steps", type=int, default=3000)
    add("--repeat", type=int, default=2, help="measurements of each, interleaved")
    args = parser.parse_args()
    configs = grid(args)
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()
    print(f"grokscan refill benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {args.device} {name}")
    if hasattr(os, "getloadavg"):
        print("load average before: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    shape = f"x+y mod {args.p}, MLP, weight decay 0/0.3/1/3 x {args.seeds} seeds, <= {args.steps} steps"
    print(f"{len(configs)} runs ({shape}), at most {args.pack_size} at a time")
    train_runs(configs[:1], device=args.device)  # warm-up: kernels, task table
    walls, outcomes = {}, {}
    for refill in (False, True) * args.repeat:  # interleaved: drift on a shared machine shows
        start = time.perf_counter()
        results = train_runs(configs, device=args.device, pack_size=args.pack_size, refill=refill)
        walls.setdefault(refill, []).append(time.perf_counter() - start)
        outcomes[refill] = [(r.step_fit, r.step_gen, r.steps_run) for r in results]
    assert outcomes[True] == outcomes[False], "refill changed a run's outcome"
    steps = [s for _, _, s in outcomes[True]]
    print(f"steps_run per run: min {min(steps)}, max {max(steps)}, total {sum(steps)} member-steps")
    for refill in (False, True):
        print(
            f"refill {'on ' if refill else 'off'}: wall "
            + ", ".join(f"{w:.1f}" for w in walls[refill])
            + " s"
        )
    off, on = min(walls[False]), min(walls[True])
    print(f"ratio (fastest off / fastest on): {off / on:.2f}x")


if __name__ == "__main__":
    main()
