"""A paper-scale run set through grokscan.engine.loop.train_runs (no Ray): Nanda et al. 2023's 1-layer
transformer on x+y mod 113 (d_model 128, 4 heads, d_mlp 512, no LayerNorm; AdamW lr 1e-3, weight decay 1,
betas (0.9, 0.98), full batch, 10-step warmup: grokscan's transformer defaults), over a grid of training
fractions x seeds. Nanda et al. train frac 0.3 for 40k steps; here runs stop early once both accuracies
stay >= 0.99 for 3 evals, and `--steps` caps the budget (a run not generalized by then is censored).

Writes, under --out: runs.csv (one line per run, appended as runs end, so a run cut short by a time limit
still leaves every finished run) and summary.txt (per fraction: runs, generalized, median step_fit and
step_gen of those that reached them), and prints the summary.

    python benchmarks/paper_sweep.py --device cuda --out DIR [--fracs 0.2,0.3,...] [--seeds 4]
        [--steps 15000] [--eval-every 100] [--pack-size N]
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import statistics
import sys
import time
from datetime import datetime, timezone

import torch

from grokscan.config import RunConfig
from grokscan.engine.loop import train_runs
from grokscan.result import RunResult

COLUMNS = ("run_id", "frac", "seed", "status", "step_fit", "step_gen", "steps_run", "val_acc", "wall_s")
COLUMNS += ("pack_size", "device")


def grid(args: argparse.Namespace) -> list[RunConfig]:
    base = dict(model="transformer", p=args.p, steps=args.steps, eval_every=args.eval_every)
    if args.width:
        base.update(width=args.width, d_mlp=4 * args.width)
    fracs = [float(f) for f in args.fracs.split(",")]
    return [RunConfig(**base, frac=f, seed=s) for f in fracs for s in range(args.seeds)]


def row(r: RunResult) -> list:
    c, val = r.config, r.final.get("val_acc")
    return [c.run_id, c.frac, c.seed, r.status, r.step_fit, r.step_gen, r.steps_run, val, r.wall_s] + [
        r.pack_size,
        r.device,
    ]


def summary(rows: list[dict], total: int) -> list[str]:
    def median(values: list) -> str:
        values = [int(v) for v in values if v not in ("", None)]
        return f"{statistics.median(values):.0f}" if values else "-"

    lines = [
        f"{'frac':>6}{'runs':>6}{'ok':>4}{'generalized':>13}{'median step_fit':>17}{'median step_gen':>17}"
    ]
    for frac in sorted({float(r["frac"]) for r in rows}):
        cell = [r for r in rows if float(r["frac"]) == frac]
        gen = [r for r in cell if r["step_gen"] not in ("", None)]
        ok = sum(r["status"] == "ok" for r in cell)
        fit, step_gen = median([r["step_fit"] for r in cell]), median([r["step_gen"] for r in gen])
        lines.append(f"{frac:>6.2f}{len(cell):>6}{ok:>4}{len(gen):>13}{fit:>17}{step_gen:>17}")
    lines.append(f"{len(rows)} of {total} runs finished")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--device", default="cuda")
    add("--out", default=os.environ.get("OUT", "paper_sweep_out"))
    add("--fracs", default="0.2,0.3,0.4,0.5,0.6,0.7")
    add("--seeds", type=int, default=4)
    add("--p", type=int, default=113)
    add("--width", type=int, default=None, help="d_model (d_mlp = 4 x width); default 128 (Nanda et al.)")
    add("--steps", type=int, default=15000)
    add("--eval-every", type=int, default=100)
    add("--pack-size", type=int, default=None, help="default: sized from the device's free memory")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    configs = grid(args)
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    head = [
        f"grokscan paper-scale sweep, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, device {name}, "
        f"torch {torch.__version__}",
        f"{len(configs)} runs: transformer x+y mod {args.p}, fracs {args.fracs}, {args.seeds} seeds, "
        f"<= {args.steps} steps, eval every {args.eval_every}, pack size {args.pack_size or 'from memory'}",
    ]
    print("\n".join(head), flush=True)
    path = os.path.join(args.out, "runs.csv")
    done: list[dict] = []
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)

        def finished(results: list[RunResult]) -> None:
            for r in results:
                writer.writerow(row(r))
                done.append(dict(zip(COLUMNS, row(r), strict=True)))
            f.flush()
            print(
                f"  {len(done)}/{len(configs)} runs done, {time.perf_counter() - start:.0f} s",
                file=sys.stderr,
            )

        # A time limit (timeout's SIGTERM) ends the sweep, not the summary of the runs that finished.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
        start = time.perf_counter()
        try:
            train_runs(configs, device=args.device, pack_size=args.pack_size, on_finished=finished)
        except SystemExit:
            print("stopped by SIGTERM (time limit)", file=sys.stderr)
        wall = time.perf_counter() - start
    steps = sum(int(r["steps_run"]) for r in done)
    lines = head + summary(done, len(configs))
    lines.append(
        f"wall {wall:.1f} s for {steps} member-steps ({steps / wall:.0f} member-steps/s incl. evals)"
    )
    with open(os.path.join(args.out, "summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[len(head) :]))


if __name__ == "__main__":
    main()
