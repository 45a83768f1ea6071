"""Print RESULTS.md's tables for the tickets and XOR-cluster sections from a results directory, so that the
numbers there are computed, never typed.

    grokscan run search_spaces/tickets_parents.py --storage DIR
    grokscan run search_spaces/tickets.py --storage DIR
    python benchmarks/results_tables.py tickets DIR
    grokscan run search_spaces/xor_cluster.py --storage DIR2 && python benchmarks/results_tables.py xor DIR2
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

import grokscan
from grokscan.engine.tickets import magnitude_keep, prunable

KINDS = ("magnitude", "random", "dense_l2", "dense_l1")


def _first(curve: pd.DataFrame, column: str, level: float) -> str:
    hit = curve.loc[curve[column] >= level, "step"]
    return f"{int(hit.iloc[0]):,}" if len(hit) else "–"


def tickets(root: str) -> None:
    runs, curves = grokscan.load_runs(root, "tickets"), grokscan.load_curves(root, "tickets")
    print(
        "| weight decay | rate | ticket | random mask | dense, ticket's L2 | dense, ticket's L1 | dense net |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for wd in sorted(runs["weight_decay"].unique(), reverse=True):
        dense = runs[(runs["weight_decay"] == wd) & (runs["ticket"] == "none")]
        for k, rate in enumerate(sorted(runs["prune_rate"].dropna().unique())):
            cells = []
            for kind in (*KINDS, "none"):
                if kind == "none" and k > 0:
                    cells.append("")
                    continue
                pick = (
                    dense
                    if kind == "none"
                    else runs[
                        (runs["weight_decay"] == wd) & (runs["ticket"] == kind) & (runs["prune_rate"] == rate)
                    ]
                )
                run = pick.iloc[0]
                curve = curves[curves["run_id"] == run["run_id"]].sort_values("step")
                cell = f"{run['final_val_acc']:.3f} ({_first(curve, 'val_acc', 0.9)})"
                if run["final_train_acc"] < 0.99:
                    cell += f", train {run['final_train_acc']:.2f}"
                cells.append(cell)
            print(f"| {wd:g} | {rate:g} | " + " | ".join(cells) + " |")
    parents = grokscan.load_runs(root, "tickets_parents")
    parent = parents.iloc[0]
    steps = ", ".join(f"{c} {parent[c]}" for c in ("step_fit", "step_gen", "steps_run"))
    print(f"\nparent: {steps}")
    weights = {k: torch.from_numpy(v) for k, v in grokscan.load_weights(root, parent["run_id"]).items()}
    names = prunable(weights)
    for rate in sorted(runs["prune_rate"].dropna().unique()):
        keep = magnitude_keep({n: weights[n] for n in names}, rate, "global")
        shares = ", ".join(f"{n} {1 - keep[n].float().mean().item():.0%}" for n in names)
        print(f"rate {rate:g}, global threshold prunes: {shares}")
    print("\nsteps_run and step_gen (threshold 0.99) of each run:")
    cols = ["ticket", "prune_rate", "weight_decay", "step_fit", "step_gen", "steps_run"]
    print(runs[cols].sort_values(cols[2::-1]).to_string(index=False))


def xor(root: str) -> None:
    runs, curves = grokscan.load_runs(root, "xor_cluster"), grokscan.load_curves(root, "xor_cluster")
    head = ("flipped", "training rows", "step_fit", "val_acc at step_fit", "step_gen (≥ 0.95)")
    print("| " + " | ".join(head) + " | val_acc at 10 / 300 | train_acc at 300 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for _, run in runs.sort_values(["label_noise", "frac"]).iterrows():
        c = curves[curves["run_id"] == run["run_id"]].set_index("step")
        fit, gen = run["step_fit"], run["step_gen"]
        at_fit = f"{c.loc[fit, 'val_acc']:.3f}" if pd.notna(fit) else "–"
        last = int(c.index.max())
        rows = round(run["frac"] * run["n_samples"]) if pd.notna(run.get("n_samples")) else "?"
        print(
            f"| {run['label_noise']:.0%} | {rows} | {fit if pd.notna(fit) else 'never'} | {at_fit} | "
            f"{gen if pd.notna(gen) else 'never'} | "
            f"{c.loc[10, 'val_acc']:.3f} / {c.loc[last, 'val_acc']:.3f} | "
            f"{c.loc[last, 'train_acc']:.1f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", choices=("tickets", "xor"))
    parser.add_argument("storage")
    args = parser.parse_args()
    {"tickets": tickets, "xor": xor}[args.section](args.storage)
