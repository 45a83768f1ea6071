"""The driver side of a sweep: a Tune callback that counts the runs trials have stored, prints progress, and
keeps the runs of trials that failed for good (Ray-level failures, e.g. a lost node, where no trial code ran
to the end to record them).

Trials write their runs to the store themselves (`trials.pack_trial`), so the driver holds no run data: a
driver killed at any moment loses no run a trial has reported.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from grokscan.config import RunConfig
from grokscan.results.store import CompactionStats, Store
from grokscan.sweep.ray_env import tune
from grokscan.sweep.trials import reported_runs

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
    """What `run_sweep` did: runs trained now (`written`), runs skipped (already stored), and runs stored as
    failed (`errors`)."""

    total: int
    skipped: int
    written: int
    errors: int
    wall_s: float
    trained_s: float = 0.0  # summed per-run wall time of the runs trained now
    retries: int = 0  # trials restarted after a failure (e.g. a lost node)
    statuses: dict[str, int] = field(default_factory=dict)
    compaction: CompactionStats | None = None  # the store's compaction once the sweep ended


class StoreCallback(tune.Callback):
    """Driver side: count the runs trials report as stored, print progress, remember failed trials."""

    def __init__(
        self, store: Store, sweep: str, total: int, done_before: int, quiet: bool, configs_of: Callable
    ) -> None:
        self.store, self.sweep, self.total, self.quiet = store, sweep, total, quiet
        self.configs_of = configs_of  # trial config -> its RunConfigs
        self.done = self.done_before = done_before
        self.written: set[str] = set()  # run ids trials reported as stored (any status)
        self.generalized = self.trained_s = self.retries = 0
        self.statuses: dict[str, int] = {}
        self.failed_trials: list[tuple[dict, str]] = []  # configs of trials that failed for good, error line
        self.start = self.last_print = time.monotonic()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        for run in reported_runs(result):
            if run.run_id in self.written:  # a retried trial re-reports its pack
                continue
            self.written.add(run.run_id)
            self.done += 1
            self.generalized += run.generalized
            self.trained_s += run.wall_s
            self.statuses[run.status] = self.statuses.get(run.status, 0) + 1
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

    def write_failed(self) -> None:
        """Store the runs of trials that failed for good as "error" rows."""
        failed = self.failed
        if failed:
            self.store.write(self.sweep, errors=failed, idempotent=True)
            self.written.update(c.run_id for c, _ in failed)
            self.statuses["error"] = self.statuses.get("error", 0) + len(failed)

    def on_experiment_end(self, trials, **info) -> None:
        self.progress(force=True)

    def outcome(
        self, total: int, skipped: int, start: float, compaction: CompactionStats | None = None
    ) -> SweepOutcome:
        errors = self.statuses.get("error", 0)
        return SweepOutcome(
            total,
            skipped,
            len(self.written) - errors,
            errors,
            time.monotonic() - start,
            self.trained_s,
            self.retries,
            self.statuses,
            compaction,
        )

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
