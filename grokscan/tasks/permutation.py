"""Composition in the symmetric group S_n, n = 3..6: permutations indexed in itertools.permutations(range(n))
order, a permutation x read as the map i -> x[i], and (x∘y)(i) = x(y(i)).

Two operand orders, each under its own task names, so a stored run id never changes meaning:

- `sN`: x∘y; `sNconj`: x∘y∘x⁻¹; `sNaba`: x∘y∘x (grokscan's order since 0.1).
- `sN_openai`: y∘x; `sNconj_openai`: x⁻¹∘y∘x: the order of Power et al. 2022's code (openai/grok,
  grok/data.py, `_make_binary_operation_data`: ``c = b[a]`` on numpy arrays for s5, ``c = a * b * (~a)``
  on sympy Permutations, whose product applies the left factor first, for s5conj). So `s5` is openai's
  s5 with the operands swapped, and `s5conj` is openai's s5conj with x inverted. openai's s5aba,
  ``a * b * a``, is x∘y∘x, which `sNaba` already is: no `_openai` variant of it.

New names rather than a changed `s5`: runs stored under `s5` keep their ids and their meaning (as
Gymnasium gives an environment a new id when its behaviour changes).
"""

from __future__ import annotations

import itertools
import math

import torch

from grokscan.config import RunConfig
from grokscan.registry import TASKS
from grokscan.tasks.base import Dims, Task, TaskData

VARIANTS = ("", "conj", "aba")
OPENAI_VARIANTS = ("", "conj")


def _compose(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # (a∘b)(i) = a(b(i))
    return torch.gather(a, 1, b)


class PermutationTask(Task):
    """Pairs of permutations of n items -> the index of their composition; n! tokens and classes."""

    def __init__(self, n: int, variant: str, openai: bool = False) -> None:
        self.name = f"s{n}{variant}" + ("_openai" if openai else "")
        self.n, self.variant, self.openai = n, variant, openai

    def dims(self, cfg: RunConfig) -> Dims:
        k = math.factorial(self.n)
        return Dims(k, 2, k, k * k)

    def _compose_pair(self, px: torch.Tensor, py: torch.Tensor, inv_x: torch.Tensor) -> torch.Tensor:
        if self.openai:
            return _compose(py, px) if self.variant == "" else _compose(_compose(inv_x, py), px)
        if self.variant == "conj":
            return _compose(_compose(px, py), inv_x)
        return _compose(_compose(px, py), px) if self.variant == "aba" else _compose(px, py)

    def table(self, cfg: RunConfig) -> TaskData:
        n = self.n
        perms = torch.tensor(list(itertools.permutations(range(n))))
        codes = (perms * n ** torch.arange(n)).sum(1)
        index_of = torch.full((n**n,), -1, dtype=torch.long)
        index_of[codes] = torch.arange(len(perms))
        xi, yi = torch.meshgrid(torch.arange(len(perms)), torch.arange(len(perms)), indexing="ij")
        xi, yi = xi.reshape(-1), yi.reshape(-1)
        result = self._compose_pair(perms[xi], perms[yi], torch.argsort(perms, dim=1)[xi])
        labels = index_of[(result * n ** torch.arange(n)).sum(1)]
        return TaskData(torch.stack([xi, yi], 1), labels, len(perms), len(perms))


for _n in range(3, 7):
    for _variant in VARIANTS:
        TASKS.register(PermutationTask(_n, _variant))
    for _variant in OPENAI_VARIANTS:
        TASKS.register(PermutationTask(_n, _variant, openai=True))
