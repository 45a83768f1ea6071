"""Composition in the symmetric group S_n, n = 3..6: permutations indexed in itertools.permutations(range(n))
order; `sN`: x∘y with (x∘y)(i) = x(y(i)); `sNconj`: x∘y∘x⁻¹; `sNaba`: x∘y∘x."""

from __future__ import annotations

import itertools
import math

import torch

from grokscan.config import RunConfig
from grokscan.registry import TASKS
from grokscan.tasks.base import Dims, Task, TaskData

VARIANTS = ("", "conj", "aba")


def _compose(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # (a∘b)(i) = a(b(i))
    return torch.gather(a, 1, b)


class PermutationTask(Task):
    """Pairs of permutations of n items -> the index of their composition; n! tokens and classes."""

    def __init__(self, n: int, variant: str) -> None:
        self.name, self.n, self.variant = f"s{n}{variant}", n, variant

    def dims(self, cfg: RunConfig) -> Dims:
        k = math.factorial(self.n)
        return Dims(k, 2, k, k * k)

    def table(self, cfg: RunConfig) -> TaskData:
        n = self.n
        perms = torch.tensor(list(itertools.permutations(range(n))))
        codes = (perms * n ** torch.arange(n)).sum(1)
        index_of = torch.full((n**n,), -1, dtype=torch.long)
        index_of[codes] = torch.arange(len(perms))
        xi, yi = torch.meshgrid(torch.arange(len(perms)), torch.arange(len(perms)), indexing="ij")
        xi, yi = xi.reshape(-1), yi.reshape(-1)
        px, py = perms[xi], perms[yi]
        result = _compose(px, py)
        if self.variant == "conj":
            result = _compose(result, torch.argsort(perms, dim=1)[xi])
        elif self.variant == "aba":
            result = _compose(result, px)
        labels = index_of[(result * n ** torch.arange(n)).sum(1)]
        return TaskData(torch.stack([xi, yi], 1), labels, len(perms), len(perms))


for _n in range(3, 7):
    for _variant in VARIANTS:
        TASKS.register(PermutationTask(_n, _variant))
