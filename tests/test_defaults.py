"""The default run groks: weight decay 1 generalizes within the budget, weight decay 0 does not."""

from __future__ import annotations

import pytest

from grokscan.config import RunConfig
from grokscan.engine.loop import train_runs
from grokscan.results.phases import phase


@pytest.mark.slow
def test_default_mlp_groks_with_weight_decay_and_memorizes_without():
    with_wd, without_wd = train_runs(
        [RunConfig(weight_decay=1.0, seed=0), RunConfig(weight_decay=0.0, seed=0)]
    )
    assert with_wd.status == without_wd.status == "ok"
    assert with_wd.step_gen is not None and with_wd.step_gen < with_wd.config.steps
    assert with_wd.final["val_acc"] >= 0.99
    assert without_wd.step_fit is not None and without_wd.step_gen is None and without_wd.censored
    assert without_wd.steps_run == without_wd.config.steps
    # Fit at ~800 of a 4,000-step budget: under 10x step_fit, so not yet called memorization.
    assert phase(without_wd.step_fit, without_wd.step_gen, steps_run=without_wd.steps_run) == "undetermined"
    assert without_wd.final["val_acc"] < 0.5
