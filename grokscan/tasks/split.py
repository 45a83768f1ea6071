"""Deterministic train/validation splits and label noise, from a run's split_seed alone."""

from __future__ import annotations

import torch

from grokscan.config import RunConfig

LABEL_NOISE_STREAM = 1_000_003  # offsets the label-noise generator from the split generator


def split(n_rows: int, frac: float, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train rows, validation rows): a permutation from split_seed; the first round(frac * n_rows) train."""
    perm = torch.randperm(n_rows, generator=torch.Generator().manual_seed(split_seed))
    n_train = round(frac * n_rows)
    return perm[:n_train], perm[n_train:]


def noisy_labels(y: torch.Tensor, train_rows: torch.Tensor, n_classes: int, cfg: RunConfig) -> torch.Tensor:
    """Labels as the run sees them: round(label_noise * n_train) training labels set to another class."""
    y = y.clone()
    n_noisy = round(cfg.label_noise * len(train_rows))
    if n_noisy:
        gen = torch.Generator().manual_seed(cfg.split_seed + LABEL_NOISE_STREAM)
        rows = train_rows[torch.randperm(len(train_rows), generator=gen)[:n_noisy]]
        shift = torch.randint(1, n_classes, (n_noisy,), generator=gen)
        y[rows] = (y[rows] + shift) % n_classes
    return y
