"""The driver side of a sweep: a Tune callback that writes reported runs to the store and prints progress.

Runs trained on any node land in one results directory, each exactly once: a trial retried after a node
failure re-trains and re-reports its pack, and runs already written are skipped.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from grokscan.config import RunConfig
from grokscan.results.store import Store
from grokscan.sweep.ray_env import tune
from grokscan.sweep.trials import reported_runs

FLUSH_EVERY_S = 10.0  # buffered runs are written at least this often (and when a trial completes)
PRINT_EVERY_S = 2.0


def _error_text(trial) -> str:
    """A failed trial's error trace. Tune writes it to the driver's trial folder first (`error_file`) and
    syncs it to the experiment's storage later, which is where `trial.get_error()` reads: too late here."""
    path = trial.error_file
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    return trial.get_error() or ""


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
        for run in reported_runs(result):
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
        lines = _error_text(trial).strip().splitlines()
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
        if self.quiet or (not force and now - self.last_print < PRINT_EVERY_S):
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
