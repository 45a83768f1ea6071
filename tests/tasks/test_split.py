"""Deterministic train/validation splits and label noise, from a run's split_seed alone."""

from __future__ import annotations

import pytest
import torch

from grokscan.config import RunConfig
from grokscan.registry import TASKS
from grokscan.tasks.split import noisy_labels, split


def _load(cfg: RunConfig):
    """The full table of a run's task."""
    return TASKS.get(cfg.task).table(cfg)


@pytest.mark.parametrize("n_rows,frac", [(121, 0.5), (110, 0.3), (36, 0.9)])
def test_split_partition(n_rows: int, frac: float) -> None:
    train, val = split(n_rows, frac, 3)
    assert len(train) == round(frac * n_rows)
    assert len(train) + len(val) == n_rows
    assert not set(train.tolist()) & set(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(n_rows))


def test_split_deterministic_in_seed() -> None:
    a_train, a_val = split(121, 0.5, 7)
    b_train, b_val = split(121, 0.5, 7)
    assert torch.equal(a_train, b_train) and torch.equal(a_val, b_val)
    c_train, _ = split(121, 0.5, 8)
    assert set(c_train.tolist()) != set(a_train.tolist())


@pytest.mark.parametrize("noise", [0.1, 0.25, 0.5])
def test_noisy_labels(noise: float) -> None:
    cfg = RunConfig(task="x+y", p=13, label_noise=noise, split_seed=4)
    data = _load(cfg)
    train, val = split(cfg.n_rows, cfg.frac, cfg.split_seed)
    noisy = noisy_labels(data.y, train, data.n_classes, cfg)
    changed = (noisy != data.y).nonzero().squeeze(1)
    assert len(changed) == round(noise * len(train)) > 0
    assert set(changed.tolist()) <= set(train.tolist())
    assert torch.equal(noisy[val], data.y[val])
    assert ((noisy >= 0) & (noisy < data.n_classes)).all()
    # deterministic in split_seed, and the input labels are left untouched
    assert torch.equal(noisy, noisy_labels(data.y, train, data.n_classes, cfg))
    assert torch.equal(data.y, _load(cfg).y)


def test_noisy_labels_zero_noise_is_identity() -> None:
    cfg = RunConfig(task="x+y", p=7)
    data = _load(cfg)
    train, _ = split(cfg.n_rows, cfg.frac, cfg.split_seed)
    assert torch.equal(noisy_labels(data.y, train, data.n_classes, cfg), data.y)


def test_noisy_labels_follow_split_seed_not_seed() -> None:
    """Invariant 2: the data side (split and label noise) is drawn from split_seed alone."""
    cfgs = [
        RunConfig(task="x+y", p=13, label_noise=0.3, seed=s, split_seed=ss)
        for s, ss in [(0, 4), (9, 4), (0, 5)]
    ]
    data = _load(cfgs[0])
    train, _ = split(cfgs[0].n_rows, cfgs[0].frac, 4)
    a, b, c = (noisy_labels(data.y, train, data.n_classes, cfg) for cfg in cfgs)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
