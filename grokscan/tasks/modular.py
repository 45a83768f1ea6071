"""Binary operations mod p (Power et al. 2022): operands 0..p-1, result mod p; x/y = x * y^(p-2) mod p with
the rows y = 0 excluded (p prime); `mix` is x/y for odd y and x-y for even y (y != 0)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from grokscan.config import RunConfig
from grokscan.registry import TASKS, cfg_error
from grokscan.tasks.base import Dims, Task, TaskData

Formula = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def _inverse(y: torch.Tensor, p: int) -> torch.Tensor:
    return torch.tensor([pow(int(v), p - 2, p) if v else 0 for v in range(p)])[y]


def _mix(x: torch.Tensor, y: torch.Tensor, p: int) -> torch.Tensor:
    return torch.where(y % 2 == 1, x * _inverse(y, p), x - y)


FORMULAS: dict[str, Formula] = {
    "x+y": lambda x, y, p: x + y,
    "x-y": lambda x, y, p: x - y,
    "x*y": lambda x, y, p: x * y,
    "x/y": lambda x, y, p: x * _inverse(y, p),
    "x^2+y^2": lambda x, y, p: x**2 + y**2,
    "x^2+xy+y^2": lambda x, y, p: x**2 + x * y + y**2,
    "x^2+xy+y^2+x": lambda x, y, p: x**2 + x * y + y**2 + x,
    "x^3+xy": lambda x, y, p: x**3 + x * y,
    "x^3+xy^2+y": lambda x, y, p: x**3 + x * y**2 + y,
    "mix": _mix,
}
DIVIDES = ("x/y", "mix")  # rows with y = 0 are excluded; p must be prime
MAX_P = 2000


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


class ModularTask(Task):
    """(x ∘ y) mod p over all operand pairs; tokens x and y, p classes."""

    fields = ("p",)

    def __init__(self, name: str) -> None:
        self.name, self.formula, self.divides = name, FORMULAS[name], name in DIVIDES

    def validate(self, cfg: RunConfig) -> None:
        if cfg.p is None or not 2 <= cfg.p <= MAX_P:
            raise cfg_error("p", cfg.p, f"task {self.name!r} needs a modulus 2 <= p <= {MAX_P}")
        if self.divides and not _is_prime(cfg.p):
            raise cfg_error(
                "p", cfg.p, f"task {self.name!r} divides by y, so p must be prime (e.g. 97 or 113)"
            )

    def dims(self, cfg: RunConfig) -> Dims:
        return Dims(cfg.p, 2, cfg.p, cfg.p * (cfg.p - 1 if self.divides else cfg.p))

    def table(self, cfg: RunConfig) -> TaskData:
        p = cfg.p
        x, y = torch.meshgrid(torch.arange(p), torch.arange(1 if self.divides else 0, p), indexing="ij")
        x, y = x.reshape(-1), y.reshape(-1)
        return TaskData(torch.stack([x, y], 1), self.formula(x, y, p) % p, p, p)


for _name in FORMULAS:
    TASKS.register(ModularTask(_name))
