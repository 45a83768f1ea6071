"""Sparse parity (Barak et al. 2022, "Hidden progress in deep learning"): n_bits bits, the label is the
parity of the first k_bits; n_samples distinct rows drawn with a fixed seed, or the full table."""

from __future__ import annotations

import random

import torch

from grokscan.config import RunConfig
from grokscan.registry import TASKS, cfg_error
from grokscan.tasks.base import Dims, Task, TaskData

TABLE_SEED = 0  # the sampled table is fixed; runs differ by split_seed only
MAX_TABLE_BITS = 20
MAX_BITS, MAX_SAMPLES = 62, 10**6


class ParityTask(Task):
    name = "parity"
    fields = ("n_bits", "k_bits", "n_samples")

    def validate(self, cfg: RunConfig) -> None:
        if cfg.n_bits is None or not 1 <= cfg.n_bits <= MAX_BITS:
            raise cfg_error("n_bits", cfg.n_bits, f"parity needs 1 <= n_bits <= {MAX_BITS}")
        if cfg.k_bits is None or not 1 <= cfg.k_bits <= cfg.n_bits:
            raise cfg_error("k_bits", cfg.k_bits, f"parity needs 1 <= k_bits <= n_bits ({cfg.n_bits})")
        if cfg.n_samples is None and cfg.n_bits > MAX_TABLE_BITS:
            raise cfg_error("n_samples", None, f"a full parity table needs n_bits <= {MAX_TABLE_BITS}")
        most = min(2**cfg.n_bits, MAX_SAMPLES)
        if cfg.n_samples is not None and not 2 <= cfg.n_samples <= most:
            raise cfg_error("n_samples", cfg.n_samples, f"must be in [2, min(2**n_bits, 1e6)] = {most}")

    def dims(self, cfg: RunConfig) -> Dims:
        return Dims(2, cfg.n_bits, 2, 2**cfg.n_bits if cfg.n_samples is None else cfg.n_samples)

    def table(self, cfg: RunConfig) -> TaskData:
        if cfg.n_samples is None:
            ints = torch.arange(2**cfg.n_bits)
        else:
            ints = torch.tensor(random.Random(TABLE_SEED).sample(range(2**cfg.n_bits), cfg.n_samples))
        bits = (ints[:, None] >> torch.arange(cfg.n_bits)) & 1
        return TaskData(bits, bits[:, : cfg.k_bits].sum(1) % 2, 2, 2)


TASKS.register(ParityTask())
