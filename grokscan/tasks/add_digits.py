"""k-digit addition as a sequence task (Nanda & Lieberum 2022, "A Mechanistic Interpretability Analysis of
Grokking", Alignment Forum: 5-digit addition; a 1-layer transformer shows a phase change per answer digit
even with infinite data, and groks with 700 training examples).

A row is ``a_1 … a_k + b_1 … b_k = s_0 … s_{k-1}``: the operands' digits as tokens 0-9, most significant
first, then "+" (token 10) and "=" (token 11), then the sum's first k answer digits (teacher forcing). The
answer is the k+1 digits of a + b written least significant first (the "reverse" format of Lee et al.
2023, "Teaching Arithmetic to Small Transformers"): answer position 0 is the units digit, position k the
carry out of the top digit. The positions from "=" on predict the answer digits s_0 … s_k, one loss per
digit. Reversed, each answer digit is a function of the two operand digits at its place, the two below
and the answer digit before it, which one layer can compute; written most significant first, a digit
depends on the whole carry chain below it (measured with a 1-layer, d_model 64 transformer on infinite
data: exact-match accuracy about 0.55 after 4,000 steps). a and b are uniform on 0 … 10^k - 1.

Fields: n_digits (k, default 5 as the source), train_size (default 700, the source's grokking size),
regime, val_size (see `grokscan.tasks.sequence`). `frac` does not apply.
"""

from __future__ import annotations

import torch

from grokscan.config import RunConfig
from grokscan.registry import TASKS, cfg_error
from grokscan.tasks.sequence import SHARED_FIELDS, SequenceTask

PLUS, EQUALS = 10, 11
MAX_DIGITS = 9  # 10**(2k) examples fit in an int64


def _digits(values: torch.Tensor, n: int, lsb_first: bool) -> torch.Tensor:
    """The n lowest decimal digits of each value, [len(values), n]."""
    powers = 10 ** torch.arange(n) if lsb_first else 10 ** torch.arange(n - 1, -1, -1)
    return (values[:, None] // powers) % 10


class AddDigits(SequenceTask):
    name = "add_digits"
    fields = ("n_digits", *SHARED_FIELDS)
    defaults = {"n_digits": 5, "train_size": 700}

    def validate_params(self, cfg: RunConfig) -> None:
        if cfg.n_digits is not None and not 1 <= cfg.n_digits <= MAX_DIGITS:
            raise cfg_error("n_digits", cfg.n_digits, f"add_digits needs 1 <= n_digits <= {MAX_DIGITS}")

    def shape(self, cfg: RunConfig) -> tuple[int, int, int, int]:
        k = self.value(cfg, "n_digits")
        return 12, 3 * k + 2, 10, k + 1

    def space(self, cfg: RunConfig) -> int:
        return 10 ** (2 * self.value(cfg, "n_digits"))

    def sample(self, cfg: RunConfig, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.value(cfg, "n_digits")
        a, b = (torch.randint(0, 10**k, (n,), generator=gen) for _ in range(2))
        answer = _digits(a + b, k + 1, lsb_first=True)
        plus, equals = torch.full((n, 1), PLUS), torch.full((n, 1), EQUALS)
        x = torch.cat([_digits(a, k, False), plus, _digits(b, k, False), equals, answer[:, :k]], 1)
        return x, answer


TASKS.register(AddDigits())
