"""A pack's tensors: one vectorized model over its members, their splits, labels, optimizer state and
eval. Every tensor has the member dimension first, so finished members can be dropped. Each member's
arithmetic is independent of the others, so a run's result does not depend on its pack."""

from __future__ import annotations

import torch

from grokscan.config import RunConfig
from grokscan.engine.losses import logits_grad, row_losses
from grokscan.engine.memory import eval_chunk
from grokscan.engine.metrics import EvalBatch, metrics_for
from grokscan.engine.models import Model
from grokscan.engine.optim import Optimizer
from grokscan.engine.precision import forward_autocast
from grokscan.engine.recording import current
from grokscan.engine.tickets import derived_start
from grokscan.registry import LOSSES, TASKS
from grokscan.tasks.base import TaskData

BATCH_STREAM = 2_000_003  # offsets the minibatch-order generator from the init generator of the same seed
_TABLES: dict[tuple, TaskData] = {}  # built tables by the task's cache key (a few, most recent last)
_MAX_TABLES = 8


def task_table(cfg: RunConfig) -> TaskData:
    """The full table of a run's task, built once per process for configs with the same cache key."""
    task = TASKS.get(cfg.task)
    key = task.cache_key(cfg)
    if key not in _TABLES:
        while len(_TABLES) >= _MAX_TABLES:
            _TABLES.pop(next(iter(_TABLES)))
        _TABLES[key] = task.table(cfg)
    return _TABLES[key]


class Pack:
    """Per-member state of one pack of configs with equal `pack_key`.

    Rows: the task's shared table (x [N, n_inputs]), or each member's own rows (x [M, N, n_inputs]) for
    tasks that draw examples (`Task.member_data`); labels [M, N] or [M, N, A] (A answer positions). A run
    that `streams` trains each update on fresh examples and keeps the last batch as its training rows."""

    def __init__(self, configs: list[RunConfig], device: torch.device) -> None:
        cfg = self.cfg = configs[0]
        self.configs = list(configs)
        self.task = TASKS.get(cfg.task)
        self.dtype = getattr(torch, cfg.dtype)
        data = task_table(cfg)
        self.model = Model(cfg, self.task.dims(cfg))
        self.recording = current()
        self.metrics = metrics_for(cfg)
        self.columns = [c for m in self.metrics for c in m.columns_for(cfg)]
        self.streams = self.task.streams(cfg)
        own_x, self.train_idx, self.labels, self.train_mask, self.flat = self._members(configs, data, device)
        self.own_rows = own_x is not None  # sequence tasks: each run's own drawn rows
        if self.own_rows:
            self.x = own_x
        else:
            self.x = data.x.to(device) if data.n_vocab is not None else data.x.to(device, self.dtype)
        self.keep = derived_start(configs, self.model, self.flat)  # a ticket's mask (engine.tickets)
        self.batch_gens = [torch.Generator().manual_seed(c.seed + BATCH_STREAM) for c in configs]
        self.epoch_order: torch.Tensor | None = None
        self.full_batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self.loss = LOSSES.get(cfg.loss)
        offsets = self.model.offsets
        self.opt = Optimizer(cfg, configs, self.flat, list(offsets.values()), offsets.get("embed"))
        self.step = 0  # updates taken: the step of the next eval

    def _members(self, configs: list[RunConfig], data: TaskData, device) -> tuple[torch.Tensor | None, ...]:
        """Per-member tensors of `configs`: their own inputs (None: the task's shared table), training rows,
        labels, train mask and initial parameters."""
        members = [self.task.member_data(c, data) for c in configs]
        own = members[0].x is not None
        x = torch.stack([member.x for member in members]).to(device) if own else None
        train_idx = torch.stack([member.train_rows for member in members]).to(device)
        labels = torch.stack([member.y for member in members]).to(device)
        mask = torch.zeros(labels.shape[:2], dtype=torch.bool, device=device).scatter_(1, train_idx, True)
        flat = torch.stack([self.model.init_member(c.seed, c.alpha, self.dtype) for c in configs])
        return x, train_idx, labels, mask, flat.to(device)

    @property
    def refillable(self) -> bool:
        """Whether runs can join while the pack trains: each member's step then has its own count, which
        full-batch training on fixed rows with a stateless gradient filter allows (a minibatch's epoch
        order, fresh examples, a filter's first update and a recording's schedule follow the pack's step)."""
        fixed_rows = self.cfg.batch_size is None and not self.streams
        return fixed_rows and not self.opt.filter.state_copies and not self.recording.per_pack_step

    def add(self, configs: list[RunConfig]) -> None:
        """Append runs that start now, at their own step 0, after the members already training."""
        x, train_idx, labels, mask, flat = self._members(configs, task_table(self.cfg), self.flat.device)
        joined = derived_start(configs, self.model, flat)  # derived runs start from their masked init
        if self.keep is not None or joined is not None:
            ones = torch.ones_like
            self.keep = torch.cat(
                [
                    ones(self.flat) if self.keep is None else self.keep,
                    ones(flat) if joined is None else joined,
                ]
            )
        if self.own_rows:
            self.x = torch.cat([self.x, x])
        self.train_idx, self.labels = torch.cat([self.train_idx, train_idx]), torch.cat([self.labels, labels])
        self.train_mask, self.flat = torch.cat([self.train_mask, mask]), torch.cat([self.flat, flat])
        self.configs += configs
        self.batch_gens += [torch.Generator().manual_seed(c.seed + BATCH_STREAM) for c in configs]
        self.full_batch = None
        self.opt.add(configs, flat)

    def select(self, keep: list[int]) -> None:
        idx = torch.tensor(keep, dtype=torch.long, device=self.flat.device)
        self.flat, self.train_idx = self.flat[idx], self.train_idx[idx]
        self.labels, self.train_mask = self.labels[idx], self.train_mask[idx]
        self.x = self.x[idx] if self.own_rows else self.x
        self.configs = [self.configs[i] for i in keep]
        self.batch_gens = [self.batch_gens[i] for i in keep]
        self.epoch_order = self.epoch_order[idx] if self.epoch_order is not None else None
        self.full_batch = None
        self.opt.select(idx)
        self.keep = self.keep[idx] if self.keep is not None else None

    def batch_rows(self, step: int) -> torch.Tensor:
        """Training rows [M, B] for update `step` (1-based): all of them, or the next minibatch of an epoch
        shuffled by each member's own generator (without replacement; the last partial batch is dropped)."""
        batch_size = self.cfg.batch_size
        if batch_size is None:
            return self.train_idx
        n_train = self.train_idx.shape[1]
        j = (step - 1) % (n_train // batch_size)
        if j == 0:
            perms = [torch.randperm(n_train, generator=g) for g in self.batch_gens]
            self.epoch_order = torch.gather(self.train_idx, 1, torch.stack(perms).to(self.flat.device))
        return self.epoch_order[:, j * batch_size : (j + 1) * batch_size]

    def rows_of(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs [M, B, n_inputs] and labels [M, B(, A)] of each member's rows [M, B]."""
        if self.own_rows:
            x = torch.gather(self.x, 1, rows.unsqueeze(2).expand(-1, -1, self.x.shape[2]))
        else:
            x = self.x[rows]
        if self.labels.dim() == 3:
            return x, torch.gather(self.labels, 1, rows.unsqueeze(2).expand(-1, -1, self.labels.shape[2]))
        return x, torch.gather(self.labels, 1, rows)

    def fresh(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's fresh examples for update `step` (members that share a split_seed share them),
        which also become its training rows for the next eval."""
        batches: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for c in self.configs:
            if c.split_seed not in batches:
                batches[c.split_seed] = self.task.fresh_batch(c, step)
        device = self.flat.device
        x = torch.stack([batches[c.split_seed][0] for c in self.configs]).to(device)
        y = torch.stack([batches[c.split_seed][1] for c in self.configs]).to(device)
        n = x.shape[1]  # the training rows come first (Task.member_data)
        self.x[:, :n], self.labels[:, :n] = x, y
        return x, y

    def step_rows(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and labels of update `step`; a full batch's are gathered once (until members change)."""
        if self.streams:
            return self.fresh(step)
        if self.cfg.batch_size is not None:
            return self.rows_of(self.batch_rows(step))
        if self.full_batch is None:
            self.full_batch = self.rows_of(self.train_idx)
        return self.full_batch

    def train_step(self, step: int) -> None:
        self.step = step
        x, labels = self.step_rows(step)
        self.flat.requires_grad_(True)
        w = self.model.views(self.flat)
        with forward_autocast(self.cfg, self.flat.device):
            logits = self.model.arch.forward(self.model, w, x)
        logits = logits.to(self.dtype)
        grad_logits = logits_grad(self.loss, logits, labels, self.cfg.loss_dtype)
        # The named weights' gradients, concatenated: autograd's own gradient of flat would build one
        # zero-filled [M, P] tensor per weight (its slice's backward) and add them up. (The views are not
        # leaves: a leaf's bfloat16 cast is cached by autocast and would sum a reused weight's gradient
        # in bfloat16.)
        grads = torch.autograd.grad(logits, list(w.values()), grad_logits, allow_unused=True)
        self.flat.requires_grad_(False)
        grads = [torch.zeros_like(v) if g is None else g for v, g in zip(w.values(), grads, strict=True)]
        grad = torch.cat([g.reshape(len(self.flat), -1) for g in grads], 1)
        if self.keep is not None:  # masked weights get no gradient (so no optimizer state) and stay 0
            grad = grad * self.keep
        self.opt.update(self.flat, grad)
        if self.keep is not None:
            self.flat.mul_(self.keep)

    @torch.no_grad()
    def evaluate(self, start: int = 0) -> torch.Tensor:
        """[M - start, len(columns) + 1] for members start..M-1: the curve metrics' columns, then a
        finite-parameters flag (1 or 0)."""
        cfg, m = self.cfg, self.labels.shape[0]
        chunk = eval_chunk(cfg, self.model.dims)
        rows = []
        for a in range(start, m, chunk):
            flat, labels = self.flat[a : a + chunk], self.labels[a : a + chunk]
            train = self.train_mask[a : a + chunk].to(self.dtype)
            x = self.x[a : a + chunk] if self.own_rows else self.x.expand(len(flat), *self.x.shape)
            with forward_autocast(cfg, flat.device):
                logits = self.model.forward(flat, x)
            logits = logits.to(self.dtype)
            losses = row_losses(cfg.loss, logits, labels, cfg.loss_dtype)
            per_position = None
            if losses.dim() == 3:  # [m, N, A]: rows' losses are the mean over answer positions
                per_position, losses = losses, losses.mean(2)
            n_train, n_val = train.sum(1), (1 - train).sum(1)
            ev = EvalBatch(
                cfg, self.model, flat, logits, labels, losses, train, n_train, n_val, per_position, self.step
            )
            finite = torch.isfinite(flat).all(1, keepdim=True).to(self.dtype)
            rows.append(torch.cat([*(metric.compute(ev) for metric in self.metrics), finite], 1))
        if self.recording.on_eval is not None:
            self.recording.on_eval(self.model, self.configs, self.step, self.flat)
        return torch.cat(rows)
