"""relu2 (Xu et al. 2023's two-layer ReLU net with a fixed +-1/sqrt(m) output layer): forward and loss
against numpy, its init scale, its one parameter, pack invariance and the inputs it refuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_pack_invariance import assert_identical

from grokscan.config import RunConfig
from grokscan.engine.loop import train_runs
from grokscan.engine.losses import row_losses
from grokscan.engine.models import Model
from grokscan.errors import UserError
from grokscan.registry import TASKS

BASE = dict(task="xor_cluster", n_samples=200, dim=30, cluster_norm=4.0, model="relu2", width=6)
GD = dict(optimizer="sgd", momentum=0.0, weight_decay=0.0, warmup=0, lr=1.0, steps=20, eval_every=5)


def test_forward_and_logistic_loss_match_numpy() -> None:
    cfg = RunConfig(**BASE, dtype="float64")
    model = Model(cfg, TASKS.get(cfg.task).dims(cfg))
    assert list(model.spec) == ["w"] and model.n_params == 30 * 6  # the output layer is not a parameter
    flat = torch.randn(2, model.n_params, dtype=torch.float64)
    x = torch.randn(2, 7, 30, dtype=torch.float64)
    logits = model.forward(flat, x)
    labels = torch.randint(0, 2, (2, 7))
    losses = row_losses("ce", logits, labels)
    a = np.array([1, 1, 1, -1, -1, -1]) / np.sqrt(6)
    for i in range(2):
        w = flat[i].numpy().reshape(30, 6)
        f = np.maximum(x[i].numpy() @ w, 0) @ a
        assert np.allclose(logits[i].numpy(), np.stack([-f / 2, f / 2], 1), rtol=1e-12, atol=1e-14)
        y = np.where(labels[i].numpy() == 1, 1.0, -1.0)
        assert np.allclose(losses[i].numpy(), np.log1p(np.exp(-y * f)), rtol=1e-12)


def test_config_round_trips() -> None:  # as trials rebuild it from a dict
    cfg = RunConfig(**BASE, **GD)
    assert RunConfig(**cfg.to_dict()) == cfg and cfg.depth == 1


def test_small_init() -> None:
    cfg = RunConfig(**{**BASE, "dim": 400, "width": 50})
    w = Model(cfg, TASKS.get(cfg.task).dims(cfg)).init_member(0, cfg.alpha, torch.float64)
    assert abs(w.std().item() - 1e-3 / 20) < 0.05 * 1e-3 / 20


def test_pack_invariance() -> None:
    configs = [RunConfig(**BASE, **GD, dtype="float64", seed=s, label_noise=0.1) for s in range(3)]
    packed = train_runs(configs)
    for cfg, result in zip(configs, packed, strict=True):
        assert_identical(train_runs([cfg])[0], result)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(task="x+y", p=7), "relu2 takes real-valued features and 2 classes"),
        (dict(task="digits"), "relu2 takes real-valued features and 2 classes"),
        (dict(width=5), "relu2 needs an even width"),
        (dict(depth=2), "relu2 has one hidden layer"),
    ],
)
def test_refuses(bad, match) -> None:
    with pytest.raises(UserError, match=match):
        RunConfig(**{**BASE, **bad})
