"""Run identity: ids of stored runs never change, new options at their default change no id, and
analysis-only parameters are not part of a run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from grokscan.config import IDENTITY_V1, RunConfig
from grokscan.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures"


def _pinned() -> list[dict]:
    """run_ids of 16 configs (every task family, both models, each optimizer and filter, float64, label
    noise, minibatches, each loss and activation) as computed by grokscan 0.1, before the registries."""
    return json.loads((FIXTURES / "run_ids_v0.json").read_text())


@pytest.mark.parametrize("pinned", _pinned(), ids=lambda p: p["run_id"])
def test_pinned_run_ids_hold(pinned):
    assert RunConfig(**pinned["config"]).run_id == pinned["run_id"]


def test_pinned_configs_are_varied():
    configs = [RunConfig(**p["config"]) for p in _pinned()]
    assert len({c.run_id for c in configs}) == len(configs) >= 12
    seen = {
        name: {getattr(c, name) for c in configs} for name in ("model", "optimizer", "grad_filter", "loss")
    }
    assert seen["model"] == {"mlp", "transformer"}
    assert seen["optimizer"] == {"adamw", "adam", "sgd"}
    assert seen["grad_filter"] == {"none", "perp", "grokfast"}
    assert seen["loss"] == {"ce", "stablemax", "mse"}
    assert {c.dtype for c in configs} == {"float32", "float64"} and any(c.label_noise for c in configs)


@dataclasses.dataclass(frozen=True)
class _WithNewOption(RunConfig):
    """RunConfig as it will be once a new option lands: a field whose default keeps today's behaviour."""

    new_option: str | None = "off"


def test_a_new_field_at_its_default_changes_no_run_id():
    for pinned in _pinned():
        assert _WithNewOption(**pinned["config"]).run_id == pinned["run_id"]
        changed = _WithNewOption(**pinned["config"], new_option="on").run_id
        assert changed != pinned["run_id"]
    assert _WithNewOption(new_option=None).run_id == RunConfig().run_id  # not applying: not hashed


def test_every_v1_field_still_changes_the_id_except_retired_ones():
    base = RunConfig()
    for name in IDENTITY_V1:
        if name == "gap":
            assert name not in {f.name for f in dataclasses.fields(RunConfig)}
            continue
        if getattr(base, name) is None:
            continue  # does not apply to the default run
        other = {"task": "x-y", "model": "transformer", "activation": "gelu", "optimizer": "adam"}.get(name)
        value = other if other is not None else _bumped(getattr(base, name))
        value = {"steps": 4050, "eval_every": 40}.get(name, value)  # steps stay a multiple of eval_every
        assert RunConfig(**{name: value}).run_id != base.run_id, name


def _bumped(value):
    if isinstance(value, str):
        return {"ce": "stablemax", "none": "perp", "float32": "float64"}[value]
    if isinstance(value, int):
        return value + 1
    return value * 0.5 if value else 0.1


def test_analysis_only_parameters_are_not_run_fields():
    with pytest.raises(UserError, match="unknown RunConfig field 'gap'"):
        RunConfig.from_dict({"gap": 500})
