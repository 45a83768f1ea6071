"""xor_cluster (Xu et al. 2023): the table's clusters and XOR labels checked with numpy, the noisy training
labels against the clean validation labels a run sees, its defaults and its bad values."""

from __future__ import annotations

import numpy as np
import pytest

from grokscan.config import RunConfig
from grokscan.errors import UserError
from grokscan.registry import TASKS

CFG = dict(task="xor_cluster", n_samples=4000, dim=50, cluster_norm=6.0, model="relu2", width=8)


def test_clusters_and_xor_labels() -> None:
    cfg = RunConfig(**CFG)
    data = TASKS.get("xor_cluster").table(cfg)
    x, y = data.x.numpy(), data.y.numpy()
    assert x.shape == (4000, 50) and data.n_vocab is None and data.n_classes == 2
    # the nearest of the four means +-6 e1, +-6 e2 (the noise is N(0, I)) names the cluster: e1 -> 0, e2 -> 1
    means = np.zeros((4, 50))
    means[0, 0], means[1, 0], means[2, 1], means[3, 1] = 6, -6, 6, -6
    nearest = ((x[:, None, :] - means[None]) ** 2).sum(2).argmin(1)
    assert (nearest // 2 == y).mean() > 0.99
    for c in range(4):
        rows = x[nearest == c]
        assert 900 < len(rows) < 1100  # four clusters drawn uniformly
        assert np.abs(rows.mean(0) - means[c]).max() < 0.35  # 4 sd of a mean of ~1000 N(0, 1) draws
        assert 0.9 < rows[:, 2:].std() < 1.1
    # XOR: the best linear read-out of either axis is at chance
    assert abs(((x[:, 0] > 0) == y).mean() - 0.5) < 0.05 and abs(((x[:, 1] > 0) == y).mean() - 0.5) < 0.05


def test_noisy_training_labels_clean_validation() -> None:
    cfg = RunConfig(**CFG, frac=0.1, label_noise=0.25, seed=3)
    task = TASKS.get("xor_cluster")
    data = task.table(cfg)
    member = task.member_data(cfg, data)
    train = np.zeros(4000, bool)
    train[member.train_rows.numpy()] = True
    flipped = member.y.numpy() != data.y.numpy()
    assert train.sum() == cfg.n_train == 400
    assert flipped[train].sum() == 100 and not flipped[~train].any()


def test_defaults_and_bad_values() -> None:
    cfg = RunConfig(task="xor_cluster", model="relu2")
    assert (cfg.dim, cfg.cluster_norm, cfg.n_samples, cfg.width) == (2000, 14.0, 2000, 512)
    assert RunConfig().dim is None and RunConfig().cluster_norm is None  # other tasks: not theirs
    for bad, match in [
        (dict(dim=1), "'dim' = 1 is invalid: xor_cluster needs an input dimension >= 2"),
        (dict(cluster_norm=0.0), "'cluster_norm' = 0.0 is invalid: must be > 0"),
        (dict(n_samples=10**6), "'n_samples' = 1000000 is invalid: xor_cluster needs n_samples >= 4"),
    ]:
        with pytest.raises(UserError, match=match):
            RunConfig(task="xor_cluster", model="relu2", **bad)
