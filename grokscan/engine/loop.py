"""Train packs of runs: one vectorized model per pack, eval schedule, stop rules, step_fit / step_gen.

A pack that runs out of CUDA memory is split in half and its unfinished runs retrained from step 0 (pack
invariance makes that equal to the first attempt), down to one run; a run that does not fit alone is left
out and named in `MemberOutOfMemory`, raised once every other run has trained.

On CPU a pack trains single-threaded: multi-threaded BLAS splits a lone matrix product differently from a
batch of them, which would make results depend on pack size; parallelism comes from training several packs
at once (Ray trials).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence

import torch

from grokscan.config import RunConfig
from grokscan.engine.memory import default_pack_size, member_bytes
from grokscan.engine.pack import Pack
from grokscan.engine.packing import make_packs, pack_key
from grokscan.engine.precision import matmul_mode
from grokscan.result import RunResult

OnFinished = Callable[[list[RunResult]], None]
log = logging.getLogger(__name__)


class MemberOutOfMemory(RuntimeError):
    """Runs that ran out of device memory even in a pack of one. `results`: every run's result in input
    order, None for these."""

    def __init__(self, configs: list[RunConfig], device: str, results: list[RunResult | None]) -> None:
        self.configs, self.results = configs, results
        need = max(member_bytes(c) for c in configs) / 2**30
        ids = ", ".join(c.run_id for c in configs[:5]) + (", ..." if len(configs) > 5 else "")
        super().__init__(
            f"{len(configs)} run(s) ran out of CUDA memory on {device} even alone (run_id {ids}; estimated "
            f"{need:.2f} GiB each by engine.memory.member_bytes): not trained; use a GPU with more free "
            "memory or a smaller width, batch_size or task"
        )


def train_runs(
    configs: Sequence[RunConfig],
    device: str = "cpu",
    pack_size: int | None = None,
    on_finished: OnFinished | None = None,
    memory_share: float = 1.0,
) -> list[RunResult]:
    """Train every config, packing runs of identical shapes; results in the order of `configs`.

    `pack_size` defaults from the device (`engine.memory.default_pack_size`: on CUDA its free memory, at
    most `memory_share` x its total). `on_finished` receives, once
    per eval, the runs of a pack that ended at that eval (runs of one pack can end at different steps): one
    call per batch keeps a remote caller's round trips per eval, not per run.
    """
    results: list[RunResult | None] = [None] * len(configs)
    dev = torch.device(device)
    for pack in make_packs(configs, pack_size or default_pack_size(configs, dev, share=memory_share)):
        with _cpu_mode(dev):
            trained = _train_splitting([configs[i] for i in pack], dev, on_finished)
        for i, result in zip(pack, trained, strict=True):
            results[i] = result
    _raise_out_of_memory(configs, results, device)
    return results  # type: ignore[return-value]


def _raise_out_of_memory(configs: Sequence[RunConfig], results: list, device: str) -> None:
    left = [c for c, r in zip(configs, results, strict=True) if r is None]
    if left:
        raise MemberOutOfMemory(left, device, results)


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
        results = _train_splitting(configs, dev, on_finished)
    _raise_out_of_memory(configs, results, device)
    return results  # type: ignore[return-value]


def _train_splitting(
    configs: list[RunConfig], dev: torch.device, on_finished: OnFinished | None
) -> list[RunResult | None]:
    """`_train`, splitting a pack that runs out of CUDA memory into halves of its unfinished runs until
    they fit or are alone; None for a run that does not fit alone."""
    results: list[RunResult | None] = [None] * len(configs)
    todo = [list(range(len(configs)))]
    while todo:
        idx = todo.pop()
        part: list[RunResult | None] = [None] * len(idx)
        try:
            with matmul_mode(configs[0], dev):
                _train([configs[i] for i in idx], dev, on_finished, part)
        except torch.cuda.OutOfMemoryError:
            left = [i for i, r in zip(idx, part, strict=True) if r is None]
            if len(idx) > 1:
                half = (len(left) + 1) // 2
                todo += [h for h in (left[half:], left[:half]) if h]  # the first half trains next
            log.warning(
                "CUDA out of memory in a pack of %d on %s: %s",
                len(idx),
                dev,
                f"retrying its {len(left)} unfinished runs in packs of <= {(len(left) + 1) // 2}"
                if len(idx) > 1
                else f"run {configs[idx[0]].run_id} does not fit alone",
            )
        for i, r in zip(idx, part, strict=True):
            if r is not None:
                results[i] = r
        if dev.type == "cuda":  # the failed pack's tensors are garbage now: return them to the device
            torch.cuda.empty_cache()
    return results


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


def _train(
    configs: list[RunConfig], dev: torch.device, on_finished: OnFinished | None, results: list
) -> list[RunResult]:
    """Alternate eval_every training steps with an eval; drop members from the pack as they end. Fills
    `results` as runs end, so a caller sees which had ended if this raises."""
    cfg0 = configs[0]
    pack = Pack(configs, dev)
    trackers = [_Tracker(c, pack.columns) for c in configs]
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
