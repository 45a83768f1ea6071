"""Grokking Tickets (Minegishi et al.) against the dense net and two controls, over the pruning rate, with
and without weight decay. Two stages on one storage: first

    grokscan run search_spaces/tickets_parents.py --storage DIR   # the parent, with its final weights

then this file. Each derived run restarts from the parent's init (same seed and model) with a mask from
the parent's final weights (engine.tickets): `magnitude` (the ticket: the prune_rate smallest weights of
all layers together pruned), `random` (a random mask, same per-layer sparsity) and `dense_l2` / `dense_l1`
(no mask, the init rescaled to the ticket's L2 / L1 norm); `none` is the dense net itself. All at weight
decay 1 (the parent's) and 0, 4000 steps each. 26 runs, about 4 minutes on 2 CPU cores (RESULTS.md,
section 9)."""

import runpy
from pathlib import Path

from ray import tune

from grokscan.config import RunConfig

_PARENT = runpy.run_path(str(Path(__file__).with_name("tickets_parents.py")))["param_space"]

name = "tickets"
param_space = {
    **_PARENT,
    "parent": RunConfig(**_PARENT).run_id,
    "ticket": tune.grid_search(["none", "magnitude", "random", "dense_l2", "dense_l1"]),
    "prune_rate": tune.grid_search([0.4, 0.6, 0.8]),
    "weight_decay": tune.grid_search([1.0, 0.0]),
    "steps": 4000,  # the derived runs' budget; they stop 3 evals after generalizing
    "patience": 3,
}
