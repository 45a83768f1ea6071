"""Run a sweep on Ray Tune: one trial per pack, results written to the store by the driver.

The only module that imports ray. Trials report the runs that finished at each eval as one result; a
driver-side callback writes them to the store, so runs trained on any node land in one results directory,
each exactly once (a trial retried after a node failure re-trains its pack; already-written runs are
skipped). Runs already in the store are never trained again: rerunning a sweep after a crash trains only
what is missing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from grokscan.config import RunConfig
from grokscan.result import RunResult, result_from_dict, result_to_dict
from grokscan.space import SpaceError, Sweep
from grokscan.store import Store

# Tune's per-trial CSV/JSON/TensorBoard loggers cost time per result and duplicate the store.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# An embedded Ray listens on 127.0.0.1 only: with this switch at 0 (Ray's default on macOS and Windows) Ray
# keeps a local-only instance on loopback. Read when ray is imported; joining a cluster needs real addresses.
if not os.environ.get("RAY_ADDRESS"):
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import ray  # noqa: E402
from ray import tune  # noqa: E402

RESULT_KEY = "grokscan_run"
CPU_PACK_MAX, GPU_PACK_SIZE = 16, 256
FLUSH_EVERY_S = 10.0


@dataclass
class SweepOutcome:
    """What `run_sweep` did: runs trained now, runs skipped (already stored), and failures."""

    total: int
    skipped: int
    written: int
    errors: int
    wall_s: float
    trained_s: float = 0.0  # summed per-run wall time of the runs trained now
    retries: int = 0  # trials restarted after a failure (e.g. a lost node)
    statuses: dict[str, int] = field(default_factory=dict)


def init_ray(address: str | None = None, num_cpus: int | None = None, object_store_mb: int = 512) -> None:
    """Join `address` (or $RAY_ADDRESS), else start an embedded local Ray: loopback only, dashboard off, Ray's
    token authentication left on (its default for a new local instance)."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    common = {"log_to_driver": False, "logging_level": "ERROR", "configure_logging": True}
    if address:
        try:
            ray.init(address=address, **common)
        except ConnectionError as err:
            raise SpaceError(f"--address {address}: cannot join a Ray cluster there ({err})") from None
    else:
        ray.init(
            num_cpus=num_cpus or os.cpu_count(),
            include_dashboard=False,
            object_store_memory=object_store_mb * 2**20,
            **common,
        )


def default_pack_size(n_runs: int, gpus_per_trial: float) -> int:
    """GPU: large packs fill the device. CPU: about four packs per core (load balance), at most 16."""
    if gpus_per_trial > 0:
        return GPU_PACK_SIZE
    slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, min(CPU_PACK_MAX, math.ceil(n_runs / (4 * slots))))


def _pack_trial(config: dict, packs: list[list[dict]]) -> None:
    from grokscan.train import train_runs

    configs = [RunConfig(**c) for c in packs[config["pack"]]]
    device = "cuda" if ray.get_gpu_ids() else "cpu"

    def report(results: list[RunResult]) -> None:  # one report per eval: each is a round trip to the driver
        tune.report({RESULT_KEY: json.dumps([result_to_dict(r) for r in results])})

    train_runs(configs, device=device, pack_size=len(configs), on_finished=report)


class _StoreCallback(tune.Callback):
    """Driver side: buffer reported runs, write them to the store in fragments, print progress."""

    def __init__(self, store: Store, sweep: str, total: int, done_before: int, quiet: bool) -> None:
        self.store, self.sweep, self.total, self.quiet = store, sweep, total, quiet
        self.done, self.buffer = done_before, []
        self.written: set[str] = set()
        self.generalized = self.trained_s = self.retries = 0
        self.statuses: dict[str, int] = {}
        self.start = self.last_flush = self.last_print = time.monotonic()
        self.done_before = done_before

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        for run in map(result_from_dict, json.loads(result.get(RESULT_KEY, "[]"))):
            if run.run_id in self.written:  # a retried trial re-reports its pack
                continue
            self.written.add(run.run_id)
            self.buffer.append(run)
            self.done += 1
            self.generalized += run.step_gen is not None
            self.trained_s += run.wall_s
            self.statuses[run.status] = self.statuses.get(run.status, 0) + 1
        if time.monotonic() - self.last_flush > FLUSH_EVERY_S:
            self.flush()
        self.progress()

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self.retries += 1

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.flush()

    def on_experiment_end(self, trials, **info) -> None:
        self.flush()
        self.progress(force=True)

    def flush(self) -> None:
        if self.buffer:
            self.store.write(self.sweep, self.buffer)
            self.buffer = []
        self.last_flush = time.monotonic()

    def progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.quiet or (not force and now - self.last_print < 2.0):
            return
        self.last_print = now
        elapsed = now - self.start
        new = self.done - self.done_before
        left = self.total - self.done
        eta = f"{elapsed / new * left:.0f}s" if new and left else "-"
        print(
            f"[{self.sweep}] {self.done}/{self.total} runs done, {self.generalized} generalized"
            f" (this session), elapsed {elapsed:.0f}s, ETA {eta}",
            file=sys.stderr,
            flush=True,
        )


def run_sweep(
    sweep: Sweep,
    storage: str = "results",
    *,
    address: str | None = None,
    gpus_per_trial: float | None = None,
    pack_size: int | None = None,
    max_concurrent: int | None = None,
    max_failures: int = 2,
    quiet: bool = False,
) -> SweepOutcome:
    """Train every run of `sweep` not yet in `storage` on Ray Tune and write results there."""
    start = time.monotonic()
    store = Store(storage)
    done = store.done_run_ids(sweep.name)
    todo = [c for c in sweep.configs if c.run_id not in done]
    skipped = len(sweep.configs) - len(todo)
    if not todo:
        return SweepOutcome(len(sweep.configs), skipped, 0, 0, time.monotonic() - start)
    init_ray(address)
    gpus = sweep.resources["gpu"] if gpus_per_trial is None else gpus_per_trial
    size = pack_size or sweep.pack_size or default_pack_size(len(todo), gpus)
    packs = _packs(todo, size)
    callback = _StoreCallback(store, sweep.name, len(sweep.configs), skipped, quiet)
    trainable = tune.with_resources(
        tune.with_parameters(_pack_trial, packs=[[c.to_dict() for c in p] for p in packs]),
        {"cpu": sweep.resources["cpu"], "gpu": gpus},
    )
    tune_dir = tempfile.mkdtemp(prefix="grokscan-tune-")
    try:
        tuner = tune.Tuner(
            trainable,
            param_space={"pack": tune.grid_search(list(range(len(packs))))},
            tune_config=tune.TuneConfig(
                reuse_actors=True, max_concurrent_trials=max_concurrent or sweep.max_concurrent
            ),
            run_config=tune.RunConfig(
                name=sweep.name,
                storage_path=tune_dir,
                failure_config=tune.FailureConfig(max_failures=max_failures),
                callbacks=[callback],
                verbose=0,
            ),
        )
        grid = tuner.fit()
        errors = _record_errors(grid, packs, callback, store, sweep.name)
    finally:
        shutil.rmtree(tune_dir, ignore_errors=True)
    return SweepOutcome(
        len(sweep.configs),
        skipped,
        len(callback.written),
        errors,
        time.monotonic() - start,
        callback.trained_s,
        callback.retries,
        callback.statuses,
    )


def _packs(configs: Sequence[RunConfig], size: int) -> list[list[RunConfig]]:
    from grokscan.train import make_packs  # torch is needed by trials, not to plan them

    return [[configs[i] for i in pack] for pack in make_packs(configs, size)]


def _record_errors(grid, packs, callback: _StoreCallback, store: Store, sweep: str) -> int:
    """Runs of trials that failed for good (all retries spent) are stored with status "error"."""
    failed = []
    for result in grid:
        if result.error is None:
            continue
        text = f"{type(result.error).__name__}: {str(result.error).strip().splitlines()[-1][:500]}"
        for cfg in packs[result.config["pack"]]:
            if cfg.run_id not in callback.written:
                failed.append((cfg, text))
    if failed:
        store.write(sweep, errors=failed)
        callback.statuses["error"] = len(failed)
    return len(failed)
