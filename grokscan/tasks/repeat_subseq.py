"""Predicting a repeated subsequence (Nanda & Lieberum 2022, "A Mechanistic Interpretability Analysis of
Grokking", Alignment Forum: a 2-layer attention-only transformer shows a phase change on infinite data and
groks with 512 training examples; the mechanism is an induction head, Olsson et al. 2022, "In-context
Learning and Induction Heads").

A row is ``r_1 … r_L c_0 … c_{S-2}``: L = seq_len distinct tokens drawn uniformly from 0 … vocab-1, then a
repeat of S = sub_len consecutive of them, starting at an offset uniform on 0 … L - S. The first repeated
token c_0 is the cue (the offset cannot be predicted); the S - 1 positions from the cue on predict the
rest of the repeat c_1 … c_{S-1}, one loss each (teacher forcing). Distinct tokens make every answer
unique: the next token after the cue's earlier occurrence. Defaults are grokscan's own (the source gives
only the data size): vocab 32, seq_len 12, sub_len 6, train_size 512, val_size 1000.

Fields: vocab, seq_len, sub_len, train_size, regime, val_size (see `grokscan.tasks.sequence`). `frac`
does not apply. The source's model: model="transformer", depth=2, d_mlp=0 (attention-only).
"""

from __future__ import annotations

import math

import torch

from grokscan.config import RunConfig
from grokscan.registry import TASKS, cfg_error
from grokscan.tasks.sequence import SHARED_FIELDS, SequenceTask

MAX_VOCAB = 1000


class RepeatSubseq(SequenceTask):
    name = "repeat_subseq"
    fields = ("vocab", "seq_len", "sub_len", *SHARED_FIELDS)
    defaults = {"vocab": 32, "seq_len": 12, "sub_len": 6, "train_size": 512}

    def validate_params(self, cfg: RunConfig) -> None:
        vocab, length, sub = (self.value(cfg, f) for f in ("vocab", "seq_len", "sub_len"))
        if not 2 <= vocab <= MAX_VOCAB:
            raise cfg_error("vocab", cfg.vocab, f"repeat_subseq needs 2 <= vocab <= {MAX_VOCAB}")
        if not 2 <= length <= vocab:
            raise cfg_error("seq_len", cfg.seq_len, f"repeat_subseq needs 2 <= seq_len <= vocab ({vocab})")
        if not 2 <= sub <= length:
            raise cfg_error("sub_len", cfg.sub_len, f"repeat_subseq needs 2 <= sub_len <= seq_len ({length})")

    def shape(self, cfg: RunConfig) -> tuple[int, int, int, int]:
        vocab, length, sub = (self.value(cfg, f) for f in ("vocab", "seq_len", "sub_len"))
        return vocab, length + sub - 1, vocab, sub - 1

    def space(self, cfg: RunConfig) -> int:
        vocab, length, sub = (self.value(cfg, f) for f in ("vocab", "seq_len", "sub_len"))
        return math.perm(vocab, length) * (length - sub + 1)

    def sample(self, cfg: RunConfig, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        vocab, length, sub = (self.value(cfg, f) for f in ("vocab", "seq_len", "sub_len"))
        prompt = torch.rand(n, vocab, generator=gen).argsort(1)[:, :length]
        offset = torch.randint(0, length - sub + 1, (n, 1), generator=gen)
        repeat = torch.gather(prompt, 1, offset + torch.arange(sub))
        return torch.cat([prompt, repeat[:, :-1]], 1), repeat[:, 1:]


TASKS.register(RepeatSubseq())
