"""Before a sweep of derived runs: each parent stored with final weights and the same init (sweep.parents).
No Ray: the parent is trained in-process and stored as a trial stores it."""

from __future__ import annotations

import pytest
import torch

from grokscan.config import RunConfig
from grokscan.engine.loop import train_runs
from grokscan.engine.models import Model
from grokscan.engine.weights import named_weights
from grokscan.errors import UserError
from grokscan.registry import TASKS
from grokscan.results.store import Store
from grokscan.results.weights import write_weights
from grokscan.sweep.parents import check_parents

PARENT = RunConfig(task="x+y", p=11, width=16, eval_every=10, steps=20)


def _child(**kw) -> RunConfig:
    fields = dict(task="x+y", p=11, width=16, eval_every=10, steps=20, weight_decay=0.0)
    return RunConfig(**{**fields, "ticket": "magnitude", "parent": PARENT.run_id, "prune_rate": 0.5, **kw})


def _store(root: str, weights: bool) -> None:
    result = train_runs([PARENT])[0]
    Store(root).write("parents", [result])
    if weights:
        model = Model(PARENT, TASKS.get(PARENT.task).dims(PARENT))
        row = model.init_member(PARENT.seed, PARENT.alpha, torch.float32)
        write_weights(root, PARENT.run_id, result.steps_run, named_weights(model, row), final=True)


def test_missing_parent_is_named(tmp_path):
    with pytest.raises(UserError, match=f"parent run {PARENT.run_id} \\(1 derived runs\\) is not stored"):
        check_parents(str(tmp_path), [_child()])
    check_parents(str(tmp_path), [PARENT])  # no derived runs: nothing to check


def test_parent_without_final_weights(tmp_path):
    _store(str(tmp_path), weights=False)
    with pytest.raises(
        UserError, match="has no stored final weights.*record = \\{'weights': \\['final'\\]\\}"
    ):
        check_parents(str(tmp_path), [_child(), _child(ticket="random")])


def test_stored_parent_passes_and_init_must_match(tmp_path):
    _store(str(tmp_path), weights=True)
    check_parents(str(tmp_path), [_child(), _child(ticket="dense_l2", prune_rate=0.8)])
    with pytest.raises(UserError, match="has seed = 1, its parent [0-9a-f]{16} has 0:"):
        check_parents(str(tmp_path), [_child(), _child(seed=1)])
    with pytest.raises(UserError, match="width = 32"):
        check_parents(str(tmp_path), [_child(width=32)])
