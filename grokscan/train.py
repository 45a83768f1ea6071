"""Train packs of runs: one vectorized model per pack, eval schedule, stop rules, step_fit / step_gen.

A pack is a set of runs whose tensors have identical shapes (same task, model, optimizer, dtype, training
row count, ...); members may differ in seed, split, frac (at equal row count), label noise, alpha, lr,
weight decay, betas, warmup and budget. Each member's arithmetic is independent of the others, so a run's
result does not depend on its pack. On CPU a pack trains single-threaded: multi-threaded BLAS splits a
lone matrix product differently from a batch of them, which would make results depend on pack size;
parallelism comes from training several packs at once (Ray trials).
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence

import torch

from grokscan import tasks
from grokscan.config import RunConfig
from grokscan.models import Model
from grokscan.optim import Hyper, Optimizer, row_losses
from grokscan.packsize import CPU_PACK_MAX, eval_chunk, pack_size_for
from grokscan.result import CURVE_METRICS, RunResult

# Fields a pack's members may differ in; every other field (plus n_train) must match within a pack.
PER_MEMBER = frozenset(
    {"seed", "split_seed", "frac", "label_noise", "alpha", "lr", "weight_decay", "beta1", "beta2", "eps"}
    | {"momentum", "warmup", "grokfast_alpha", "grokfast_lamb", "steps", "threshold", "patience", "gap"}
)
BATCH_STREAM = 2_000_003  # offsets the minibatch-order generator from the init generator of the same seed


def pack_key(cfg: RunConfig) -> tuple:
    """Runs with equal keys can share a pack."""
    return (*(v for k, v in cfg.to_dict().items() if k not in PER_MEMBER), cfg.n_train)


def make_packs(configs: Sequence[RunConfig], pack_size: int) -> list[list[int]]:
    """Indices of `configs` grouped into packs of at most pack_size, in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for i, cfg in enumerate(configs):
        groups.setdefault(pack_key(cfg), []).append(i)
    return [g[s : s + pack_size] for g in groups.values() for s in range(0, len(g), pack_size)]


def train_runs(
    configs: Sequence[RunConfig],
    device: str = "cpu",
    pack_size: int | None = None,
    on_finished: Callable[[list[RunResult]], None] | None = None,
) -> list[RunResult]:
    """Train every config, packing runs of identical shapes; results in the order of `configs`.

    `pack_size` defaults from the device: CPU_PACK_MAX on CPU (larger packs' buffers pass glibc's 32 MB mmap
    threshold and each step page-faults them anew: up to 2x slower per member, benchmarks/README.md); on
    CUDA the largest pack of the most memory-hungry shape that fits the free memory (`pack_size_for`).
    `on_finished` receives, once per eval, the runs of a pack that ended at that eval (runs of one pack can
    end at different steps): one call per batch keeps a remote caller's round trips per eval, not per run.
    """
    results: list[RunResult | None] = [None] * len(configs)
    for pack in make_packs(configs, pack_size or _default_pack_size(configs, torch.device(device))):
        for i, result in zip(pack, train_pack([configs[i] for i in pack], device, on_finished), strict=True):
            results[i] = result
    return results  # type: ignore[return-value]


def _default_pack_size(configs: Sequence[RunConfig], dev: torch.device) -> int:
    return CPU_PACK_MAX if dev.type != "cuda" else fitting_pack_size(configs, torch.cuda.mem_get_info(dev)[0])


def fitting_pack_size(configs: Sequence[RunConfig], free_bytes: int, cap: int = 1024) -> int:
    """The largest pack size (at most cap) at which a pack of every shape in `configs` fits free_bytes."""
    return min(pack_size_for(c, free_bytes, cap=cap) for c in {pack_key(c): c for c in configs}.values())


@contextlib.contextmanager
def _cpu_mode(device: torch.device) -> Iterator[None]:
    """CPU: one thread (see module doc) and subnormal floats flushed to zero. Runs that fit their training
    set drive gradients into the subnormal range, where x86 arithmetic is ~100x slower (a weight-decay-0
    run took 4.5x longer); values that small move no Adam/SGD update."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
        torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        torch.set_flush_denormal(False)


@functools.lru_cache(maxsize=8)
def _task(key: tuple) -> tasks.TaskData:
    task, p, n_bits, k_bits, n_samples = key
    return tasks.load(RunConfig(task=task, p=p, n_bits=n_bits, k_bits=k_bits, n_samples=n_samples))


class _Pack:
    """Per-member state, all with the member dimension first, so finished members can be dropped."""

    def __init__(self, configs: list[RunConfig], device: torch.device) -> None:
        cfg = configs[0]
        self.dtype = getattr(torch, cfg.dtype)
        data = _task((cfg.task, cfg.p, cfg.n_bits, cfg.k_bits, cfg.n_samples))
        self.x = data.x.to(device) if data.n_vocab is not None else data.x.to(device, self.dtype)
        self.model = Model(cfg, data.n_vocab, data.x.shape[1], data.n_classes)
        train_rows, labels = [], []
        for c in configs:
            rows, _ = tasks.split(len(data.y), c.frac, c.split_seed)
            train_rows.append(rows)
            labels.append(tasks.noisy_labels(data.y, rows, data.n_classes, c))
        self.train_idx = torch.stack(train_rows).to(device)
        self.labels = torch.stack(labels).to(device)
        self.train_mask = torch.zeros_like(self.labels, dtype=torch.bool).scatter_(1, self.train_idx, True)
        flat = [self.model.init_member(c.seed, c.alpha, self.dtype) for c in configs]
        self.flat = torch.stack(flat).to(device)
        self.batch_gens = [torch.Generator().manual_seed(c.seed + BATCH_STREAM) for c in configs]
        self.epoch_order: torch.Tensor | None = None
        segments = list(self.model.offsets.values())
        self.opt = Optimizer(
            cfg.optimizer,
            cfg.grad_filter,
            Hyper.from_configs(configs, self.dtype, device),
            self.flat,
            segments,
        )

    def select(self, keep: list[int]) -> None:
        idx = torch.tensor(keep, device=self.flat.device)
        self.flat, self.train_idx = self.flat[idx], self.train_idx[idx]
        self.labels, self.train_mask = self.labels[idx], self.train_mask[idx]
        self.batch_gens = [self.batch_gens[i] for i in keep]
        self.epoch_order = self.epoch_order[idx] if self.epoch_order is not None else None
        self.opt.select(idx)

    def batch_rows(self, step: int, batch_size: int | None) -> torch.Tensor:
        """Training rows [M, B] for update `step` (1-based): all of them, or the next minibatch of an epoch
        shuffled by each member's own generator (without replacement; the last partial batch is dropped)."""
        if batch_size is None:
            return self.train_idx
        n_train = self.train_idx.shape[1]
        per_epoch = n_train // batch_size
        j = (step - 1) % per_epoch
        if j == 0:
            perms = [torch.randperm(n_train, generator=g) for g in self.batch_gens]
            self.epoch_order = torch.gather(self.train_idx, 1, torch.stack(perms).to(self.flat.device))
        return self.epoch_order[:, j * batch_size : (j + 1) * batch_size]

    def train_step(self, step: int, cfg: RunConfig) -> None:
        rows = self.batch_rows(step, cfg.batch_size)
        self.flat.requires_grad_(True)
        logits = self.model.forward(self.flat, self.x[rows])
        loss = row_losses(cfg.loss, logits, torch.gather(self.labels, 1, rows)).mean(1).sum()
        (grad,) = torch.autograd.grad(loss, self.flat)
        self.flat.requires_grad_(False)
        self.opt.update(self.flat, grad)

    @torch.no_grad()
    def evaluate(self, cfg: RunConfig) -> torch.Tensor:
        """[M, 7]: CURVE_METRICS then finite-parameters flag, over the full table."""
        m = self.labels.shape[0]
        chunk = eval_chunk(cfg, self.x.shape[1], self.model.n_classes)
        rows = []
        for a in range(0, m, chunk):
            flat, labels, mask = (
                self.flat[a : a + chunk],
                self.labels[a : a + chunk],
                self.train_mask[a : a + chunk],
            )
            x = self.x.expand(len(flat), *self.x.shape)
            logits = self.model.forward(flat, x)
            losses = row_losses(cfg.loss, logits, labels)
            correct = (logits.argmax(-1) == labels).to(self.dtype)
            maskf = mask.to(self.dtype)
            n_tr, n_val = maskf.sum(1), (1 - maskf).sum(1)
            zero = (
                ((losses == 0).to(self.dtype) * maskf).sum(1) / n_tr
                if cfg.loss != "mse"
                else n_tr * torch.nan
            )
            rows.append(
                torch.stack(
                    [
                        (correct * maskf).sum(1) / n_tr,
                        (correct * (1 - maskf)).sum(1) / n_val,
                        (losses * maskf).sum(1) / n_tr,
                        (losses * (1 - maskf)).sum(1) / n_val,
                        flat.norm(dim=1),
                        zero,
                        torch.isfinite(flat).all(1).to(self.dtype),
                    ],
                    1,
                )
            )
        return torch.cat(rows)


def train_pack(
    configs: Sequence[RunConfig],
    device: str = "cpu",
    on_finished: Callable[[list[RunResult]], None] | None = None,
) -> list[RunResult]:
    """Train one pack (configs with equal pack_key) as a single vectorized model."""
    configs = list(configs)
    keys = {pack_key(c) for c in configs}
    assert len(keys) == 1, "train_pack needs configs of one shape; use train_runs"
    dev = torch.device(device)
    with _cpu_mode(dev):
        return _train(configs, dev, on_finished)


class _Tracker:
    """One member's eval history and stop rules (host side, once per eval)."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.curves: dict[str, list[float]] = {"step": [], **{k: [] for k in CURVE_METRICS}}
        self.step_fit: int | None = None
        self.step_gen: int | None = None
        self.streak, self.wall = 0, 0.0

    def observe(self, step: int, row: list[float], device: str, pack_size: int) -> RunResult | None:
        """Record an eval row (CURVE_METRICS + finite-parameters flag); the result once the run has ended."""
        cfg, metrics = self.cfg, dict(zip(CURVE_METRICS, row[:-1], strict=True))
        self.curves["step"].append(step)
        for k, v in metrics.items():
            self.curves[k].append(v)
        error = None
        if row[-1] != 1.0:
            error = f"non-finite parameters at step {step}"
        elif not (math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["val_loss"])):
            error = f"non-finite loss at step {step}"
        else:
            fit, gen = metrics["train_acc"] >= cfg.threshold, metrics["val_acc"] >= cfg.threshold
            self.step_fit = step if fit and self.step_fit is None else self.step_fit
            self.step_gen = step if gen and self.step_gen is None else self.step_gen
            self.streak = self.streak + 1 if fit and gen else 0
        if not (error or self.streak >= cfg.patience or step >= cfg.steps):
            return None
        status = "diverged" if error else "ok"
        return RunResult(
            cfg,
            status,
            self.step_fit,
            self.step_gen,
            step,
            metrics,
            self.wall,
            device,
            pack_size,
            error,
            self.curves,
        )


def _train(configs: list[RunConfig], dev: torch.device, on_finished) -> list[RunResult]:
    """Alternate eval_every training steps with an eval; drop members from the pack as they end."""
    cfg0 = configs[0]
    pack = _Pack(configs, dev)
    trackers = [_Tracker(c) for c in configs]
    results: list[RunResult | None] = [None] * len(configs)
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    active, step, last = list(range(len(configs))), 0, time.perf_counter()
    while True:
        metrics = pack.evaluate(cfg0).cpu().tolist()
        now = time.perf_counter()
        keep, finished = [], []
        for i, row in zip(active, metrics, strict=True):
            trackers[i].wall += (now - last) / len(active)
            results[i] = trackers[i].observe(step, row, device_name, len(configs))
            (finished if results[i] else keep).append(i)
        if finished and on_finished is not None:
            on_finished([results[i] for i in finished])
        if not keep:
            return results  # type: ignore[return-value]
        if len(keep) < len(active):
            pack.select([active.index(i) for i in keep])
        active, last = keep, time.perf_counter()
        for _ in range(cfg0.eval_every):
            step += 1
            pack.train_step(step, cfg0)
