"""Before a sweep of derived runs: each parent stored with final weights and the same init (sweep.parents).
No Ray: the parent is trained in-process and stored as a trial stores it."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from test_space import write

from grokscan.cli import main
from grokscan.config import RunConfig
from grokscan.engine.loop import train_runs
from grokscan.engine.models import Model
from grokscan.engine.tickets import parent_weights
from grokscan.engine.weights import named_weights
from grokscan.errors import UserError
from grokscan.registry import TASKS
from grokscan.results.store import Store, load_runs
from grokscan.results.weights import load_weights, write_weights
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


PARENTS_SPACE = """
    name = "parents"
    record = {"weights": ["final"]}
    param_space = {"p": 11, "width": 16, "steps": 60, "eval_every": 10, "lr": 0.01}
"""
TICKETS_SPACE = """
    from grokscan.config import RunConfig
    _PARENT = {"p": 11, "width": 16, "steps": 60, "eval_every": 10, "lr": 0.01}
    name = "tix"
    param_space = {
        **_PARENT,
        "parent": RunConfig(**_PARENT).run_id,
        "ticket": tune.grid_search(["magnitude", "random", "dense_l2"]),
        "prune_rate": tune.grid_search([0.5, 0.8]),
        "weight_decay": 0.0,
    }
"""


def test_two_stage_sweep_trains_derived_runs_and_resumes(ray_local, tmp_path, capsys):
    storage = str(tmp_path / "results")
    tickets = str(write(tmp_path, TICKETS_SPACE, "tix.py"))
    assert main(["run", tickets, "--storage", storage]) == 2  # parents first
    assert "is not stored under" in capsys.readouterr().err
    assert main(["run", str(write(tmp_path, PARENTS_SPACE, "parents.py")), "--storage", storage]) == 0
    assert main(["run", tickets, "--storage", storage, "--pack-size", "4"]) == 0
    runs = load_runs(storage, "tix")
    assert len(runs) == 6 and (runs["status"] == "ok").all()
    assert set(runs["parent"]) == {RunConfig(p=11, width=16, steps=60, eval_every=10, lr=0.01).run_id}
    # each run as trained alone, in-process, from the stored parent: the sweep's packs changed nothing
    first = runs.iloc[0]
    alone_cfg = RunConfig(
        p=11,
        width=16,
        steps=60,
        eval_every=10,
        lr=0.01,
        weight_decay=0.0,
        parent=first["parent"],
        ticket=first["ticket"],
        prune_rate=float(first["prune_rate"]),
    )
    assert alone_cfg.run_id == first["run_id"]
    with parent_weights(lambda run_id: load_weights(storage, run_id)):
        alone = train_runs([alone_cfg])[0]
    assert alone.step_fit == (None if pd.isna(first["step_fit"]) else first["step_fit"])
    assert alone.final["val_acc"] == pytest.approx(first["final_val_acc"], abs=1e-6)
    capsys.readouterr()
    assert main(["run", tickets, "--storage", storage]) == 0  # resume: nothing left to train
    assert "0 runs trained, 6 already stored" in capsys.readouterr().out
