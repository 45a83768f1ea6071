"""batch_rule: a minibatch size that depends on the training set, resolved into batch_size when the config
is built. half_up_to_512 is Power et al. 2022's "minibatch size 512 or half of training dataset size
(whichever is smaller)", rounded up as openai/grok grok/data.py:434-435 (commit 3d64b1d) does."""

from __future__ import annotations

import pytest

from grokscan.config import RunConfig
from grokscan.errors import UserError

RULE = dict(batch_rule="half_up_to_512")


@pytest.mark.parametrize(
    "fields,n_train,batch",
    [
        (dict(p=97, frac=0.5), 4704, 512),  # round(0.5 * 9409) = 4704: the cap
        (dict(p=59, frac=0.2), 696, 348),  # round(0.2 * 3481) = 696
        (dict(p=7, frac=0.3), 15, 8),  # round(0.3 * 49) = 15: half rounded up
        (dict(p=32, frac=1023 / 1024), 1023, 512),  # ceil(1023 / 2) = 512, the cap exactly
        (dict(task="x/y", p=97, frac=0.1), 931, 466),  # round(0.1 * 97 * 96) = 931
    ],
)
def test_half_up_to_512(fields: dict, n_train: int, batch: int) -> None:
    cfg = RunConfig(**fields, **RULE)
    assert cfg.n_train == n_train
    assert cfg.batch_size == batch and cfg.batch_rule is None


def test_the_rule_is_the_run_that_names_its_batch_size() -> None:
    cfg = RunConfig(p=59, frac=0.2, **RULE)
    assert cfg.run_id == RunConfig(p=59, frac=0.2, batch_size=348).run_id
    assert RunConfig.from_dict(cfg.to_dict()) == cfg  # the stored row rebuilds the same run


@pytest.mark.parametrize(
    "fields,match",
    [
        (dict(batch_rule="half"), r"'batch_rule' = 'half'.*half_up_to_512"),
        (dict(batch_size=64, **RULE), r"'batch_size' = 64.*batch_rule"),
        (dict(task="max_of_seq", model="transformer", **RULE), r"'batch_rule'.*no training fraction"),
    ],
)
def test_bad_batch_rule(fields: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        RunConfig(**fields)
