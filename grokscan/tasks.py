"""Task tables and deterministic splits.

Every task is one full table of examples; a run trains on a fraction of its rows and validates on the rest.
Modular ops follow Power et al. 2022 (operands 0..p-1, result mod p; x/y = x * y^(p-2) mod p with y = 0
excluded). S_n tasks index permutations in itertools.permutations(range(n)) order, with (x∘y)(i) = x(y(i)).
Sparse parity follows Barak et al. 2022: n bits, the label is the parity of the first k bits.
"""

from __future__ import annotations

import itertools
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from grokscan.config import DIVISION_OPS, MOD_OPS, PERM_TASK, RunConfig

PARITY_TABLE_SEED = 0  # the sampled parity table is fixed; runs differ by split_seed only


@dataclass(frozen=True)
class TaskData:
    """A full table. `x` is LongTensor[N, arity] of token ids (vocab ids < n_vocab) or FloatTensor[N, F]."""

    x: torch.Tensor
    y: torch.Tensor
    n_vocab: int | None  # None: x holds real-valued features
    n_classes: int


def _mod_labels(task: str, x: torch.Tensor, y: torch.Tensor, p: int) -> torch.Tensor:
    if task in ("x/y", "mix"):
        inverse = torch.tensor([pow(int(v), p - 2, p) if v else 0 for v in range(p)])
        div = x * inverse[y] % p
        return div if task == "x/y" else torch.where(y % 2 == 1, div, (x - y) % p)
    formulas = {
        "x+y": lambda: x + y,
        "x-y": lambda: x - y,
        "x*y": lambda: x * y,
        "x^2+y^2": lambda: x**2 + y**2,
        "x^2+xy+y^2": lambda: x**2 + x * y + y**2,
        "x^2+xy+y^2+x": lambda: x**2 + x * y + y**2 + x,
        "x^3+xy": lambda: x**3 + x * y,
        "x^3+xy^2+y": lambda: x**3 + x * y**2 + y,
    }
    return formulas[task]() % p


def _modular_table(task: str, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    first = 1 if task in DIVISION_OPS else 0
    x, y = torch.meshgrid(torch.arange(p), torch.arange(first, p), indexing="ij")
    x, y = x.reshape(-1), y.reshape(-1)
    return torch.stack([x, y], 1), _mod_labels(task, x, y, p)


def _permutation_table(n: int, variant: str) -> tuple[torch.Tensor, torch.Tensor]:
    perms = torch.tensor(list(itertools.permutations(range(n))))
    codes = (perms * n ** torch.arange(n)).sum(1)
    index_of = torch.full((n**n,), -1, dtype=torch.long)
    index_of[codes] = torch.arange(len(perms))
    inverse = torch.argsort(perms, dim=1)

    def compose(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # (a∘b)(i) = a(b(i))
        return torch.gather(a, 1, b)

    xi, yi = torch.meshgrid(torch.arange(len(perms)), torch.arange(len(perms)), indexing="ij")
    xi, yi = xi.reshape(-1), yi.reshape(-1)
    px, py = perms[xi], perms[yi]
    result = {
        "": lambda: compose(px, py),
        "conj": lambda: compose(compose(px, py), inverse[xi]),
        "aba": lambda: compose(compose(px, py), px),
    }[variant]()
    labels = index_of[(result * n ** torch.arange(n)).sum(1)]
    return torch.stack([xi, yi], 1), labels


def _parity_table(n_bits: int, k_bits: int, n_samples: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    if n_samples is None:
        ints = torch.arange(2**n_bits)
    else:
        ints = torch.tensor(random.Random(PARITY_TABLE_SEED).sample(range(2**n_bits), n_samples))
    bits = (ints[:, None] >> torch.arange(n_bits)) & 1
    return bits, bits[:, :k_bits].sum(1) % 2


def table(
    task: str, p: int | None = None, n_bits: int = 40, k_bits: int = 3, n_samples: int | None = 2000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full table of an algorithmic task: (operand ids LongTensor[N, arity], labels LongTensor[N])."""
    if task in MOD_OPS:
        if p is None:
            raise ValueError(f"task {task!r} needs the modulus p")
        return _modular_table(task, p)
    if match := PERM_TASK.match(task):
        return _permutation_table(int(match.group(1)), match.group(2) or "")
    if task == "parity":
        return _parity_table(n_bits, k_bits, n_samples)
    raise ValueError(
        f"task {task!r} has no operand table; algorithmic tasks: {', '.join(MOD_OPS)}, s3..s6, parity"
    )


def _digits() -> TaskData:
    from sklearn.datasets import load_digits  # ships with scikit-learn: no download

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float64) / 16.0
    return TaskData(x, torch.tensor(digits.target, dtype=torch.long), None, 10)


def _mnist() -> TaskData:
    root = Path(os.environ.get("GROKSCAN_DATA", Path.home() / ".cache" / "grokscan"))
    try:
        from torchvision.datasets import MNIST

        parts = [MNIST(str(root), train=train, download=False) for train in (True, False)]
    except (ImportError, RuntimeError) as err:
        raise RuntimeError(
            f"task 'mnist' needs torchvision and the MNIST files already under {root} (grokscan never "
            f"downloads); set GROKSCAN_DATA to their folder or use task='digits' ({err})"
        ) from err
    x = torch.cat([part.data.reshape(len(part.data), -1) for part in parts]).double() / 255.0
    return TaskData(x, torch.cat([part.targets for part in parts]).long(), None, 10)


def load(cfg: RunConfig) -> TaskData:
    """The full table of a run's task."""
    if cfg.task == "digits":
        return _digits()
    if cfg.task == "mnist":
        return _mnist()
    x, y = table(cfg.task, cfg.p, cfg.n_bits or 0, cfg.k_bits or 0, cfg.n_samples)
    if cfg.task in MOD_OPS:
        n_vocab = n_classes = cfg.p
    elif cfg.task == "parity":
        n_vocab, n_classes = 2, 2
    else:
        n_vocab = n_classes = math.factorial(int(PERM_TASK.match(cfg.task).group(1)))
    return TaskData(x, y, n_vocab, n_classes)


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
        gen = torch.Generator().manual_seed(cfg.split_seed + 1_000_003)
        rows = train_rows[torch.randperm(len(train_rows), generator=gen)[:n_noisy]]
        shift = torch.randint(1, n_classes, (n_noisy,), generator=gen)
        y[rows] = (y[rows] + shift) % n_classes
    return y
