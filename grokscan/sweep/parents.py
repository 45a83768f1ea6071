"""Before a sweep of derived runs (Grokking Tickets, `grokscan.engine.tickets`) starts: every parent must be
stored, with its final weights, and share its children's init.

A ticket sweep is two stages on one storage: first the parents, whose sweep records their final weights
(`record = {"weights": ["final"]}`), then the derived runs, whose `parent` is a parent's run id (a
search-space file computes it with `RunConfig(...).run_id`; search_spaces/tickets.py). A parent may be
stored under any sweep name.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from grokscan.config import RunConfig
from grokscan.errors import UserError
from grokscan.results.store import load_runs
from grokscan.results.weights import FINAL, stored_weights

# What draws a run's initial weights: the model's shape (task size, model, width, ...), seed, alpha, dtype.
INIT_FIELDS = ("task", "p", "n_bits", "dim", "model", "width", "depth", "heads", "d_mlp", "seed", "alpha")
INIT_FIELDS += ("dtype",)


def check_parents(storage: str, configs: Sequence[RunConfig]) -> None:
    """UserError naming the first parent of `configs` that is not stored under `storage` with final
    weights, or whose init differs from a child's."""
    children: dict[str, list[RunConfig]] = {}
    for cfg in configs:
        if cfg.parent is not None:
            children.setdefault(cfg.parent, []).append(cfg)
    if not children:
        return
    try:
        runs = load_runs(storage)
    except (UserError, FileNotFoundError):
        runs = pd.DataFrame(columns=["run_id", "status"])
    for parent, kids in children.items():
        rows = runs[(runs["run_id"] == parent) & (runs["status"] == "ok")]
        if rows.empty or FINAL not in stored_weights(storage, parent):
            what = "is not stored" if rows.empty else "has no stored final weights"
            raise UserError(
                f"parent run {parent} ({len(kids)} derived runs) {what} under {storage}: train the parents "
                "first, in a sweep with record = {'weights': ['final']} (search_spaces/tickets_parents.py)"
            )
        row = rows.iloc[0]
        for kid in kids:
            for name in INIT_FIELDS:
                theirs, ours = row.get(name), getattr(kid, name)
                theirs = theirs.item() if hasattr(theirs, "item") else theirs  # numpy scalar -> Python
                if not (pd.isna(theirs) and ours is None) and theirs != ours:
                    raise UserError(
                        f"derived run {kid.run_id} has {name} = {ours!r}, its parent {parent} has "
                        f"{theirs!r}: a ticket restarts from its parent's init (model, seed, alpha, dtype)"
                    )
