"""Train packs of runs: one vectorized model per pack, eval schedule, stop rules, step_fit / step_gen.

On CPU a pack trains single-threaded: multi-threaded BLAS splits a lone matrix product differently from a
batch of them, which would make results depend on pack size; parallelism comes from training several packs
at once (Ray trials).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence

import torch

from grokscan.config import RunConfig
from grokscan.engine.memory import default_pack_size
from grokscan.engine.pack import Pack
from grokscan.engine.packing import make_packs, pack_key
from grokscan.result import RunResult

OnFinished = Callable[[list[RunResult]], None]


def train_runs(
    configs: Sequence[RunConfig],
    device: str = "cpu",
    pack_size: int | None = None,
    on_finished: OnFinished | None = None,
) -> list[RunResult]:
    """Train every config, packing runs of identical shapes; results in the order of `configs`.

    `pack_size` defaults from the device (`engine.memory.default_pack_size`). `on_finished` receives, once
    per eval, the runs of a pack that ended at that eval (runs of one pack can end at different steps): one
    call per batch keeps a remote caller's round trips per eval, not per run.
    """
    results: list[RunResult | None] = [None] * len(configs)
    for pack in make_packs(configs, pack_size or default_pack_size(configs, torch.device(device))):
        for i, result in zip(pack, train_pack([configs[i] for i in pack], device, on_finished), strict=True):
            results[i] = result
    return results  # type: ignore[return-value]


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


def train_pack(
    configs: Sequence[RunConfig], device: str = "cpu", on_finished: OnFinished | None = None
) -> list[RunResult]:
    """Train one pack (configs with equal pack_key) as a single vectorized model."""
    configs = list(configs)
    if len({pack_key(c) for c in configs}) != 1:
        raise ValueError("train_pack needs configs of one shape (equal pack_key); use train_runs")
    dev = torch.device(device)
    with _cpu_mode(dev):
        return _train(configs, dev, on_finished)


class _Tracker:
    """One member's eval history and stop rules (host side, once per eval)."""

    def __init__(self, cfg: RunConfig, columns: list[str]) -> None:
        self.cfg, self.columns = cfg, columns
        self.curves: dict[str, list[float]] = {"step": [], **{k: [] for k in columns}}
        self.step_fit: int | None = None
        self.step_gen: int | None = None
        self.streak, self.wall = 0, 0.0

    def observe(self, step: int, row: list[float], device: str, pack_size: int) -> RunResult | None:
        """Record an eval row (metric columns + finite-parameters flag); the result once the run has ended."""
        cfg, metrics = self.cfg, dict(zip(self.columns, row[:-1], strict=True))
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


def _train(configs: list[RunConfig], dev: torch.device, on_finished: OnFinished | None) -> list[RunResult]:
    """Alternate eval_every training steps with an eval; drop members from the pack as they end."""
    cfg0 = configs[0]
    pack = Pack(configs, dev)
    trackers = [_Tracker(c, pack.columns) for c in configs]
    results: list[RunResult | None] = [None] * len(configs)
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    active, step, last = list(range(len(configs))), 0, time.perf_counter()
    while True:
        metrics = pack.evaluate().cpu().tolist()
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
            pack.train_step(step)
