"""The maximum element of a sequence (Nanda & Lieberum 2022, "A Mechanistic Interpretability Analysis of
Grokking", Alignment Forum: a toy task beside addition, rows like ``START 0 4 7 2 … END``).

A row is ``START s_1 … s_L END`` with s_i uniform on 0 … vocab-1 (START = vocab, END = vocab + 1); the
label is max(s), predicted at END (one answer position). Defaults are grokscan's own (the source gives no
sizes): vocab 64, seq_len 10, train_size 512, val_size 1000.

Fields: vocab, seq_len, train_size, regime, val_size (see `grokscan.tasks.sequence`). `frac` does not
apply. With one answer position the MLP can run it too.
"""

from __future__ import annotations

import torch

from grokscan.config import RunConfig
from grokscan.registry import TASKS, cfg_error
from grokscan.tasks.sequence import SHARED_FIELDS, SequenceTask

MAX_VOCAB, MAX_LEN = 1000, 256


class MaxOfSeq(SequenceTask):
    name = "max_of_seq"
    fields = ("vocab", "seq_len", *SHARED_FIELDS)
    defaults = {"vocab": 64, "seq_len": 10, "train_size": 512}

    def validate_params(self, cfg: RunConfig) -> None:
        if cfg.vocab is not None and not 2 <= cfg.vocab <= MAX_VOCAB:
            raise cfg_error("vocab", cfg.vocab, f"max_of_seq needs 2 <= vocab <= {MAX_VOCAB}")
        if cfg.seq_len is not None and not 2 <= cfg.seq_len <= MAX_LEN:
            raise cfg_error("seq_len", cfg.seq_len, f"max_of_seq needs 2 <= seq_len <= {MAX_LEN}")

    def shape(self, cfg: RunConfig) -> tuple[int, int, int, int]:
        vocab = self.value(cfg, "vocab")
        return vocab + 2, self.value(cfg, "seq_len") + 2, vocab, 1

    def space(self, cfg: RunConfig) -> int:
        return self.value(cfg, "vocab") ** self.value(cfg, "seq_len")

    def sample(self, cfg: RunConfig, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        vocab, length = self.value(cfg, "vocab"), self.value(cfg, "seq_len")
        values = torch.randint(0, vocab, (n, length), generator=gen)
        x = torch.cat([torch.full((n, 1), vocab), values, torch.full((n, 1), vocab + 1)], 1)
        return x, values.max(1, keepdim=True).values


TASKS.register(MaxOfSeq())
