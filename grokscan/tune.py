"""Run a sweep on Ray Tune: one trial per pack, results written to the store by the driver.

With tune_search.py (adaptive sweeps, where a searcher proposes the trials), the only module that imports
ray. Trials report the runs that finished at each eval as one result; a driver-side callback writes them to
the store, so runs trained on any node land in one results directory, each exactly once (a trial retried
after a node failure re-trains its pack; already-written runs are skipped). Runs already in the store are
never trained again: rerunning a sweep after a crash trains only what is missing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from grokscan.adaptive import run_objective
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
GPU_PACK_SIZE, GPU_PACK_MAX = 256, 1024
DEFAULT_GPU_BYTES = 16 * 2**30  # GPU memory assumed when the driver sees no GPU (V100-16GB, T4, A4000)
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


def default_pack_size(n_runs: int, gpus_per_trial: float, configs: Sequence[RunConfig] = ()) -> int:
    """GPU: the largest pack of the most memory-hungry shape in `configs` that fits the trial's share of a
    GPU (train.fitting_pack_size, at most GPU_PACK_MAX; GPU_PACK_SIZE without configs). CPU: about four packs
    per core (load balance), at most 16."""
    if gpus_per_trial > 0:
        if not configs:
            return GPU_PACK_SIZE
        from grokscan.train import fitting_pack_size

        return fitting_pack_size(configs, gpu_free_bytes(gpus_per_trial), cap=GPU_PACK_MAX)
    from grokscan.packsize import CPU_PACK_MAX

    slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, min(CPU_PACK_MAX, math.ceil(n_runs / (4 * slots))))


def gpu_free_bytes(gpus_per_trial: float) -> int:
    """A trial's share of GPU memory: the least free memory over this machine's GPUs as nvidia-smi reports
    it, or DEFAULT_GPU_BYTES where there is none (a CPU head node plans for the smallest common GPU), times
    min(1, gpus_per_trial): fractional trials share a device, and a trial trains on one device. nvidia-smi,
    not torch.cuda.mem_get_info: a CUDA context in the driver would hold GPU memory for the whole sweep."""
    try:
        query = ["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"]
        out = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True).stdout
        free = min(int(mib) for mib in out.split()) * 2**20
    except (OSError, subprocess.SubprocessError, ValueError):
        free = DEFAULT_GPU_BYTES
    return int(free * min(1.0, gpus_per_trial))


def trial_configs(config: dict, packs: list[list[dict]], fixed: dict) -> list[RunConfig]:
    """A trial's runs: a planned pack (grid sweeps), the runs a grokscan searcher proposed, or a Tune
    searcher's sampled point on top of the fixed fields (one run)."""
    if "pack" in config:
        return [RunConfig(**c) for c in packs[config["pack"]]]
    if "runs" in config:
        return [RunConfig(**c) for c in config["runs"]]
    return [RunConfig.from_dict({**fixed, **config})]


def pack_trial(config: dict, packs: list[list[dict]], fixed: dict, metric: str | None) -> None:
    from grokscan.train import train_runs

    configs = trial_configs(config, packs, fixed)
    device = "cuda" if ray.get_gpu_ids() else "cpu"

    def report(results: list[RunResult]) -> None:  # one report per eval: each is a round trip to the driver
        out = {RESULT_KEY: json.dumps([result_to_dict(r) for r in results])}
        if metric:  # a Tune searcher's trial is one run, so it reports once
            out[metric] = run_objective(metric, results[0])
        tune.report(out)

    train_runs(configs, device=device, pack_size=len(configs), on_finished=report)


class StoreCallback(tune.Callback):
    """Driver side: buffer reported runs, write them to the store in fragments, print progress."""

    def __init__(
        self, store: Store, sweep: str, total: int, done_before: int, quiet: bool, configs_of: Callable
    ) -> None:
        self.store, self.sweep, self.total, self.quiet = store, sweep, total, quiet
        self.configs_of = configs_of  # trial config -> its RunConfigs
        self.done, self.buffer = done_before, []
        self.written: set[str] = set()
        self.generalized = self.trained_s = self.retries = 0
        self.statuses: dict[str, int] = {}
        self.failed_trials: list[tuple[dict, str]] = []  # configs of trials that failed for good, error line
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

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        # Here, not from the ResultGrid: a trial that failed before reporting has no config in its Result.
        lines = (trial.get_error() or "").strip().splitlines()
        self.failed_trials.append((trial.config, (lines[-1] if lines else "the trial failed")[:500]))

    @property
    def failed(self) -> list[tuple[RunConfig, str]]:
        """Runs of trials that failed for good and never landed, with the error's last line."""
        runs = [(c, text) for cfg, text in self.failed_trials for c in self.configs_of(cfg)]
        return [(c, text) for c, text in runs if c.run_id not in self.written]

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.flush()

    def on_experiment_end(self, trials, **info) -> None:
        self.flush()
        self.progress(force=True)

    def outcome(self, total: int, skipped: int, start: float) -> SweepOutcome:
        return SweepOutcome(
            total,
            skipped,
            len(self.written),
            len(self.failed),
            time.monotonic() - start,
            self.trained_s,
            self.retries,
            self.statuses,
        )

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
    """Train every run of `sweep` not yet in `storage` on Ray Tune and write results there (an adaptive
    sweep: the runs its search algorithm proposes, see grokscan.tune_search)."""
    if sweep.search is not None:
        from grokscan.tune_search import run_search

        kw = dict(gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, max_failures=max_failures)
        return run_search(sweep, storage, address=address, quiet=quiet, **kw)
    start = time.monotonic()
    store = Store(storage)
    done = store.done_run_ids(sweep.name)
    todo = [c for c in sweep.configs if c.run_id not in done]
    skipped = len(sweep.configs) - len(todo)
    if not todo:
        return SweepOutcome(len(sweep.configs), skipped, 0, 0, time.monotonic() - start)
    init_ray(address)
    gpus = sweep.resources["gpu"] if gpus_per_trial is None else gpus_per_trial
    size = pack_size or sweep.pack_size or default_pack_size(len(todo), gpus, todo)
    packs = [[c.to_dict() for c in p] for p in _packs(todo, size)]
    callback = StoreCallback(
        store, sweep.name, len(sweep.configs), skipped, quiet, lambda cfg: trial_configs(cfg, packs, {})
    )
    # A second round re-runs the packs of trials that failed for good: a lost node can use up a trial's
    # retries before Ray has marked it dead. Runs still failing then are stored with status "error".
    pending = list(range(len(packs)))
    for last in (False, True):
        callback.failed_trials.clear()
        fit_trials(
            sweep,
            tune.with_parameters(pack_trial, packs=packs, fixed={}, metric=None),
            callback,
            gpus=gpus,
            param_space={"pack": tune.grid_search(pending)},
            max_concurrent=max_concurrent,
            max_failures=max_failures,
            write_errors=last,
        )
        pending = sorted({cfg["pack"] for cfg, _ in callback.failed_trials})
        if not pending:
            break
    return callback.outcome(len(sweep.configs), skipped, start)


def fit_trials(
    sweep: Sweep,
    trainable: Callable,
    callback: StoreCallback,
    *,
    gpus: float,
    param_space: dict,
    max_concurrent: int | None,
    max_failures: int,
    search_alg: Any = None,
    num_samples: int = 1,
    write_errors: bool = True,
) -> None:
    """Run the trials on Ray Tune (actors reused: ~25 ms per trial instead of ~1 s), then store the runs of
    trials that failed for good with status "error" (if write_errors)."""
    tune_dir = tempfile.mkdtemp(prefix="grokscan-tune-")
    try:
        tune.Tuner(
            tune.with_resources(trainable, {"cpu": sweep.resources["cpu"], "gpu": gpus}),
            param_space=param_space,
            tune_config=tune.TuneConfig(
                search_alg=search_alg,
                num_samples=num_samples,
                reuse_actors=True,
                max_concurrent_trials=max_concurrent or sweep.max_concurrent,
            ),
            run_config=tune.RunConfig(
                name=sweep.name,
                storage_path=tune_dir,
                failure_config=tune.FailureConfig(max_failures=max_failures),
                callbacks=[callback],
                verbose=0,
            ),
        ).fit()
    finally:
        shutil.rmtree(tune_dir, ignore_errors=True)
    failed = callback.failed
    if failed and write_errors:
        callback.store.write(sweep.name, errors=failed)
        callback.statuses["error"] = len(failed)


def _packs(configs: Sequence[RunConfig], size: int) -> list[list[RunConfig]]:
    from grokscan.train import make_packs  # torch is needed by trials, not to plan them

    return [[configs[i] for i in pack] for pack in make_packs(configs, size)]
