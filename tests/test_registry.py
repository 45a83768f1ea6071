"""Registries: a task and a curve metric added from outside the package with one registration each train
through the whole engine with no edit to config, the loop or pack sizing; unknown names fail clearly."""

from __future__ import annotations

import pytest
import torch

from grokscan.config import RunConfig
from grokscan.engine import memory
from grokscan.engine.loop import train_runs
from grokscan.engine.metrics import CurveMetric, EvalBatch
from grokscan.errors import UserError
from grokscan.registry import CURVE_METRICS, TASKS, cfg_error
from grokscan.tasks.base import Dims, Task, TaskData


class SumOfThree(Task):
    """(a + b + c) mod p over all triples: a toy task with three operand tokens."""

    name = "toy_sum3"
    fields = ("p",)

    def validate(self, cfg: RunConfig) -> None:
        if cfg.p is None or not 2 <= cfg.p <= 20:
            raise cfg_error("p", cfg.p, "toy_sum3 needs 2 <= p <= 20")

    def dims(self, cfg: RunConfig) -> Dims:
        return Dims(cfg.p, 3, cfg.p, cfg.p**3)

    def table(self, cfg: RunConfig) -> TaskData:
        grid = torch.cartesian_prod(*[torch.arange(cfg.p)] * 3)
        return TaskData(grid, grid.sum(1) % cfg.p, cfg.p, cfg.p)


class MaxLogit(CurveMetric):
    """Mean over validation rows of the largest logit."""

    name, columns = "toy_max_logit", ("val_max_logit",)

    def compute(self, ev: EvalBatch) -> torch.Tensor:
        top = ev.logits.max(-1).values
        return ((top * (1 - ev.train)).sum(1) / ev.n_val).unsqueeze(1)


@pytest.fixture
def toy_entries():
    TASKS.register(SumOfThree())
    CURVE_METRICS.register(MaxLogit())
    yield
    TASKS.unregister("toy_sum3")
    CURVE_METRICS.unregister("toy_max_logit")


@pytest.mark.parametrize("model", ["mlp", "transformer"])
def test_a_task_and_a_metric_registered_from_a_test_train_end_to_end(toy_entries, model):
    cfg = RunConfig(task="toy_sum3", p=5, model=model, width=16, heads=2, steps=40, eval_every=20, lr=1e-2)
    assert (cfg.n_rows, cfg.n_train) == (125, 62)
    assert (cfg.n_bits, cfg.k_bits, cfg.n_samples) == (None, None, None)  # parity's fields do not apply
    assert memory.pack_bytes(cfg, 4) > memory.pack_bytes(cfg, 1) > 0
    (result,) = train_runs([cfg])
    assert result.status == "ok" and result.steps_run == 40
    assert len(result.curves["val_max_logit"]) == len(result.curves["step"]) == 3
    assert result.final["val_max_logit"] == result.curves["val_max_logit"][-1]
    with pytest.raises(UserError, match="toy_sum3 needs 2 <= p <= 20"):
        RunConfig(task="toy_sum3", p=97)


def test_unknown_names_list_the_registered_ones():
    with pytest.raises(
        UserError, match=r"'task' = 'x\+z' is invalid: not a registered task; did you mean 'x\+y'"
    ):
        RunConfig(task="x+z")
    with pytest.raises(UserError, match="unknown task 'nothing_like_it'; allowed: .*x\\+y, x-y, .*s6aba"):
        TASKS.get("nothing_like_it")


def test_registering_a_second_entry_under_a_taken_name_is_refused(toy_entries):
    with pytest.raises(RuntimeError, match="task 'toy_sum3' is registered twice"):
        TASKS.register(SumOfThree())
