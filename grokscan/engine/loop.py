"""Train packs of runs: one vectorized model per pack, eval schedule, stop rules, step_fit / step_gen.

Refill: runs of a shape waiting for their turn join a running pack as its members end, each member
counting its own steps from 0 (warmup, bias correction, eval schedule, budget and stop rules are per
member), so a pack does not shrink to a few stragglers while runs wait.

A pack that runs out of CUDA memory is split: its unfinished runs start again from step 0 (pack
invariance makes that equal to the first attempt) at most half as many at a time as it held, down to one
run; a run that does not fit alone is left out and named in `MemberOutOfMemory`, raised once every other
run has trained.

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
    refill: bool = True,
) -> list[RunResult]:
    """Train every config, packing runs of identical shapes; results in the order of `configs`.

    At most `pack_size` runs of a shape train at once, by default from the device
    (`engine.memory.default_pack_size`: on CUDA its free memory, at most `memory_share` x its total). With
    `refill`, runs of that shape waiting join a running pack as its members end (where the pack allows:
    `Pack.refillable`), instead of waiting for the whole pack to end; results are the same either way.
    `on_finished` receives, once per eval, the runs of a pack that ended at that eval (runs of one pack can
    end at different steps): one call per batch keeps a remote caller's round trips per eval, not per run.
    """
    results: list[RunResult | None] = [None] * len(configs)
    dev = torch.device(device)
    size = pack_size or default_pack_size(configs, dev, share=memory_share)
    for group in make_packs(configs, len(configs)):  # one group per shape
        with _cpu_mode(dev):
            trained = _train_splitting([configs[i] for i in group], dev, on_finished, size, refill)
        for i, result in zip(group, trained, strict=True):
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
    configs: list[RunConfig],
    dev: torch.device,
    on_finished: OnFinished | None,
    capacity: int | None = None,
    refill: bool = True,
) -> list[RunResult | None]:
    """`_train` with at most `capacity` runs at once (default: all); on CUDA out-of-memory its unfinished
    runs start again at half the members it held, down to one; None for a run that does not fit alone."""
    results: list[RunResult | None] = [None] * len(configs)
    capacity, alone = capacity or len(configs), set()
    while left := [i for i, r in enumerate(results) if r is None and i not in alone]:
        part: list[RunResult | None] = [None] * len(left)
        active: list[int] = []  # positions in `left` of the members training when it raised
        try:
            with matmul_mode(configs[0], dev):
                _train([configs[i] for i in left], dev, on_finished, part, capacity, active, refill)
        except torch.cuda.OutOfMemoryError:
            if capacity == 1:
                alone.add(left[active[0]])
            capacity = max(1, len(active) // 2)
            log.warning(
                "CUDA out of memory in a pack of %d on %s: %s",
                len(active),
                dev,
                f"retrying its unfinished runs {capacity} at a time"
                if len(active) > 1
                else f"run {configs[left[active[0]]].run_id} does not fit alone",
            )
        for i, r in zip(left, part, strict=True):
            if r is not None:
                results[i] = r
        if dev.type == "cuda":  # the failed pack's tensors are garbage now: return them to the device
            torch.cuda.empty_cache()
    return results


class _Tracker:
    """One member's eval history and stop rules (host side, once per eval)."""

    def __init__(self, cfg: RunConfig, columns: list[str], pack_size: int) -> None:
        self.cfg, self.columns, self.pack_size, self.step = cfg, columns, pack_size, 0
        self.curves: dict[str, list[float]] = {"step": [], **{k: [] for k in columns}}
        self.step_fit: int | None = None
        self.step_gen: int | None = None
        self.streak, self.wall = 0, 0.0

    def observe(self, row: list[float], device: str) -> RunResult | None:
        """Record an eval row at this member's step (metric columns + finite-parameters flag); the result
        once the run has ended. pack_size: the members training when it started."""
        cfg, step, metrics = self.cfg, self.step, dict(zip(self.columns, row[:-1], strict=True))
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
            self.pack_size,
            error,
            self.curves,
        )


def _train(
    configs: list[RunConfig],
    dev: torch.device,
    on_finished: OnFinished | None,
    results: list,
    capacity: int,
    active: list[int],
    refill: bool = True,
) -> None:
    """Alternate eval_every training steps with an eval; drop members from the pack as they end and, in a
    refillable pack, let waiting runs join in their place (each member counts its own steps from 0). Fills
    `results` as runs end and keeps `active` (positions in `configs` of the members training), so a caller
    sees both if this raises."""
    waiting = list(range(len(configs)))
    active[:] = waiting[:capacity]
    del waiting[:capacity]
    pack = Pack([configs[i] for i in active], dev)
    refill = refill and pack.refillable
    trackers = {i: _Tracker(configs[i], pack.columns, len(active)) for i in active}
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    start, step, last = 0, 0, time.perf_counter()  # step: the pack's; a member's is its tracker's
    while True:
        metrics = pack.evaluate(start).cpu().tolist()
        now = time.perf_counter()
        finished = []
        for i, row in zip(active[start:], metrics, strict=True):
            trackers[i].wall += (now - last) / (len(active) - start)
            results[i] = trackers[i].observe(row, device_name)
            if results[i] is not None:
                finished.append(i)
        if finished and on_finished is not None:
            on_finished([results[i] for i in finished])
        keep = [i for i in active if results[i] is None]
        if len(keep) < len(active):
            pack.select([active.index(i) for i in keep])
        active[:], last = keep, time.perf_counter()
        joining = waiting[: capacity - len(keep)] if refill else []
        if joining:  # they start at step 0: evaluate them there, then train with the rest
            del waiting[: len(joining)]
            start = len(active)
            active += joining  # before add: an out-of-memory there counts them
            pack.add([configs[i] for i in joining])
            trackers.update({i: _Tracker(configs[i], pack.columns, len(active)) for i in joining})
            continue
        if not active:
            if not waiting:
                return
            active[:] = waiting[:capacity]  # the next pack of a shape that cannot refill
            del waiting[:capacity]
            pack, step, start = Pack([configs[i] for i in active], dev), 0, 0
            trackers.update({i: _Tracker(configs[i], pack.columns, len(active)) for i in active})
            continue
        start = 0
        for _ in range(configs[0].eval_every):
            step += 1
            pack.train_step(step)
        for i in active:
            trackers[i].step += configs[0].eval_every
