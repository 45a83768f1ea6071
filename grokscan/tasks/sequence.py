"""Sequence tasks: examples drawn from a task's distribution instead of rows of a full table, in two regimes.

Nanda & Lieberum 2022 ("A Mechanistic Interpretability Analysis of Grokking", Alignment Forum) argue that
grokking is a phase change plus regularization and limited data: a task whose loss shows a phase change
even with infinite data groks when trained on a small fixed sample with weight decay. The regimes map that:

- finite (default): `train_size` distinct examples drawn once from `split_seed`, trained on every step
  (or in minibatches of `batch_size`). Draws come in fixed chunks, so for one split_seed a smaller
  train_size gives a subset of a larger one's examples.
- infinite: every update trains on `batch_size` fresh examples (default: the task's default train_size)
  drawn from a stream seeded by (split_seed, step); the eval's training rows are the batch of the last
  update (at step 0 a batch never trained on), so train_acc measures fresh data too. train_size is None.

Both regimes validate on the same fixed held-out sample: `val_size` distinct examples drawn from a seed
fixed per task (not per run), so every run of a task's parameters is measured on the same examples. No
training example, fixed or fresh, is one of them (rows are compared by a 62-bit hash of their tokens; a
collision can only exclude an example that is not held out). Everything is a function of the config and
the step, so a run's data does not depend on its pack.

Rows are whole token sequences with their own separators; the last `n_outputs` positions predict the
answer (teacher forcing). `frac` and `label_noise` do not apply: they must stay at their defaults.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import torch

from grokscan.config import RunConfig
from grokscan.registry import cfg_error
from grokscan.tasks.base import Dims, MemberData, Task, TaskData

REGIMES = ("finite", "infinite")
SHARED_FIELDS = ("train_size", "regime", "val_size")
DEFAULT_VAL_SIZE = 1000
MAX_EXAMPLES = 10**6  # train_size, val_size and batch_size of a sequence run
CHUNK = 1024  # examples drawn at a time for the fixed samples (so that smaller samples are prefixes)
_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunConfig)}
_P1, _P2 = 2_147_483_647, 2_147_483_629  # primes below 2**31: two hashes combined into one int64


def row_keys(x: torch.Tensor) -> torch.Tensor:
    """A 62-bit hash per row of token ids x [n, T] (< 2**16): equal rows have equal keys; distinct rows
    collide with probability about 2**-62 per pair."""
    h1 = torch.zeros(len(x), dtype=torch.long)
    h2 = torch.zeros(len(x), dtype=torch.long)
    for t in range(x.shape[1]):
        h1 = (h1 * 65_537 + x[:, t] + 1) % _P1
        h2 = (h2 * 131_071 + x[:, t] + 1) % _P2
    return h1 * _P2 + h2


def _first_occurrences(keys: torch.Tensor) -> torch.Tensor:
    """Bool mask of the first row of each distinct key (in row order)."""
    order = torch.argsort(keys, stable=True)
    ordered = keys[order]
    first = torch.ones(len(keys), dtype=torch.bool)
    first[1:] = ordered[1:] != ordered[:-1]
    keep = torch.zeros(len(keys), dtype=torch.bool)
    keep[order[first]] = True
    return keep


def _generator(*parts: object) -> torch.Generator:
    """A CPU generator seeded by a hash of `parts` (independent streams for distinct parts)."""
    digest = hashlib.sha256(":".join(map(str, ("grokscan", *parts))).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


class SequenceTask(Task):
    """Base of the sequence tasks. Subclasses set `name`, `fields` (their own, then SHARED_FIELDS),
    `defaults` (resolved values of their fields and `train_size`) and implement `sample`, `shape` and
    `space`; `validate_params` checks their own fields."""

    frac_split = False
    defaults: dict[str, int] = {}

    def sample(self, cfg: RunConfig, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n i.i.d. examples (x [n, n_inputs] token ids, y [n, n_outputs] answer tokens) drawn with gen."""
        raise NotImplementedError

    def shape(self, cfg: RunConfig) -> tuple[int, int, int, int]:
        """(n_vocab, n_inputs, n_classes, n_outputs) from the config alone."""
        raise NotImplementedError

    def space(self, cfg: RunConfig) -> int:
        """Number of distinct examples (the task's full table, too large to enumerate)."""
        raise NotImplementedError

    def validate_params(self, cfg: RunConfig) -> None:
        """Raise cfg_error for values of the subclass's own fields it cannot run."""

    def value(self, cfg: RunConfig, name: str) -> int | None:
        """A field's value with the task's default resolved (validation sees configs before normalize)."""
        value = getattr(cfg, name)
        return self.defaults.get(name) if value is None else value

    def regime(self, cfg: RunConfig) -> str:
        return cfg.regime or "finite"

    def val_size(self, cfg: RunConfig) -> int:
        return cfg.val_size or DEFAULT_VAL_SIZE

    def validate(self, cfg: RunConfig) -> None:
        self.validate_params(cfg)
        if cfg.regime is not None and cfg.regime not in REGIMES:
            raise cfg_error("regime", cfg.regime, f"one of {', '.join(REGIMES)} (None: finite)")
        for name in ("train_size", "val_size"):
            value = getattr(cfg, name)
            if value is not None and not 1 <= value <= MAX_EXAMPLES:
                raise cfg_error(name, value, f"must be in [1, {MAX_EXAMPLES:,}] (None: the task's default)")
        if self.regime(cfg) == "infinite" and cfg.batch_size is not None and cfg.batch_size > MAX_EXAMPLES:
            raise cfg_error("batch_size", cfg.batch_size, f"must be <= {MAX_EXAMPLES:,} fresh examples")
        for name in ("frac", "label_noise"):
            if getattr(cfg, name) != _FIELD_DEFAULTS[name]:
                raise cfg_error(
                    name,
                    getattr(cfg, name),
                    f"does not apply to task {self.name!r} (it draws examples; set train_size and regime)",
                )
        held = self.val_size(cfg) + (self.value(cfg, "train_size") if self.regime(cfg) == "finite" else 0)
        if 2 * held > self.space(cfg):
            raise cfg_error(
                "train_size" if self.regime(cfg) == "finite" else "val_size",
                cfg.train_size if self.regime(cfg) == "finite" else cfg.val_size,
                f"task {self.name!r} has {self.space(cfg):,} distinct examples here; training and held-out "
                f"examples ({held:,}) may take at most half of them",
            )

    def normalize(self, cfg: RunConfig) -> dict:
        out = {name: self.value(cfg, name) for name in self.fields if name not in SHARED_FIELDS}
        out.update(regime=self.regime(cfg), val_size=self.val_size(cfg), train_size=None)
        if self.regime(cfg) == "finite":
            out["train_size"] = self.value(cfg, "train_size")
        elif cfg.batch_size is None:
            out["batch_size"] = self.defaults["train_size"]
        return out

    def dims(self, cfg: RunConfig) -> Dims:
        n_vocab, n_inputs, n_classes, n_outputs = self.shape(cfg)
        return Dims(n_vocab, n_inputs, n_classes, self.val_size(cfg), n_outputs)

    def cache_key(self, cfg: RunConfig) -> tuple:
        own = (getattr(cfg, f) for f in self.fields if f not in SHARED_FIELDS)
        return (self.name, *own, self.val_size(cfg))

    def streams(self, cfg: RunConfig) -> bool:
        return self.regime(cfg) == "infinite"

    def n_train(self, cfg: RunConfig) -> int:
        """Examples each update trains on (finite: all train_size unless minibatches; infinite: a batch)."""
        if self.streams(cfg):
            return cfg.batch_size or self.defaults["train_size"]
        return self.value(cfg, "train_size")

    def eval_rows(self, cfg: RunConfig) -> int:
        return self.n_train(cfg) + self.val_size(cfg)

    def data_bytes(self, cfg: RunConfig) -> int:
        """Per run: its own rows' tokens and answer tokens (int64), train mask and row ids; with fresh
        batches, one batch more of tokens and answers."""
        _, n_inputs, _, n_outputs = self.shape(cfg)
        per_row = 8 * (n_inputs + n_outputs)
        fresh = per_row * self.n_train(cfg) if self.streams(cfg) else 0
        return self.eval_rows(cfg) * (per_row + 1) + 8 * self.n_train(cfg) + fresh

    def table(self, cfg: RunConfig) -> TaskData:
        """The fixed held-out sample: val_size distinct examples from a seed fixed per task."""
        x, y = self.draw(cfg, self.val_size(cfg), _generator(self.name, "val"), None)
        n_vocab, _, n_classes, _ = self.shape(cfg)
        return TaskData(x, y, n_vocab, n_classes)

    def member_data(self, cfg: RunConfig, table: TaskData) -> MemberData:
        """Training rows (the fixed sample, or the stream's step-0 batch), then the held-out rows."""
        if self.streams(cfg):
            x, y = self.fresh_batch(cfg, 0)
        else:
            gen = _generator(self.name, "train", cfg.split_seed)
            x, y = self.draw(cfg, self.n_train(cfg), gen, row_keys(table.x))
        rows = torch.arange(len(x))
        return MemberData(torch.cat([y, table.y]), rows, torch.cat([x, table.x]))

    def fresh_batch(self, cfg: RunConfig, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = _generator(self.name, "stream", cfg.split_seed, step)
        batch = self.n_train(cfg)
        return self.draw(cfg, batch, gen, self._held_out_keys(cfg), distinct=False, chunk=batch)

    def _held_out_keys(self, cfg: RunConfig) -> torch.Tensor:
        """Keys of the held-out sample, built once per process for each cache key (a few, last used kept)."""
        cache = self.__dict__.setdefault("_keys", {})
        key = self.cache_key(cfg)
        if key not in cache:
            while len(cache) >= 4:
                cache.pop(next(iter(cache)))
            cache[key] = row_keys(self.table(cfg).x)
        return cache[key]

    def draw(
        self,
        cfg: RunConfig,
        n: int,
        gen: torch.Generator,
        exclude: torch.Tensor | None,
        distinct: bool = True,
        chunk: int = CHUNK,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n examples drawn with gen in chunks of `chunk`: none whose key is in `exclude`, and (distinct)
        none twice. Validation keeps the excluded share at most 1/2, so few chunks are rejected."""
        taken = torch.zeros(0, dtype=torch.long) if exclude is None else exclude
        xs, ys, have = [], [], 0
        for _ in range(64 + 4 * math.ceil(n / chunk)):
            x, y = self.sample(cfg, chunk, gen)
            keys = row_keys(x)
            keep = ~torch.isin(keys, taken)
            if distinct:
                keep &= _first_occurrences(keys)
            x, y, keys = x[keep][: n - have], y[keep][: n - have], keys[keep][: n - have]
            xs.append(x)
            ys.append(y)
            have += len(x)
            if distinct:
                taken = torch.cat([taken, keys])
            if have == n:
                return torch.cat(xs), torch.cat(ys)
        raise RuntimeError(f"task {self.name!r}: could not draw {n} examples (rejected too many)")
