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
from typing import TextIO

from grokscan.config import RunConfig
from grokscan.results.store import CompactionStats, Store
from grokscan.sweep.ray_env import tune
from grokscan.sweep.trials import OOM, reported_runs

PRINT_EVERY_S = 2.0  # plain progress lines (stderr not a terminal: CI logs, job logs) at most this often
BAR_EVERY_S = 0.5  # the progress bar's redraws (on a terminal)
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} runs [{elapsed}<{remaining}]{postfix}"


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
        self,
        store: Store,
        sweep: str,
        total: int,
        done_before: int,
        quiet: bool,
        configs_of: Callable,
        *,
        stream: TextIO | None = None,
    ) -> None:
        self.store, self.sweep, self.total, self.quiet = store, sweep, total, quiet
        self.configs_of = configs_of  # trial config -> its RunConfigs
        self.done = self.done_before = done_before
        self.written: set[str] = set()  # run ids trials reported as stored (any status)
        self.out_of_memory: set[str] = set()  # run ids that did not fit in device memory alone (not stored)
        self.generalized = self.trained_s = self.retries = 0
        self.statuses: dict[str, int] = {}
        self.failed_trials: list[tuple[dict, str]] = []  # configs of trials that failed for good, error line
        self.start = self.last_print = time.monotonic()
        self.stream = stream  # progress goes there (default: sys.stderr when printing)
        self.trials: list = []  # Tune's trials, as its last callback passed them: counts the running ones
        self.bar = None  # the tqdm bar, on a terminal

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.trials = trials
        for run in reported_runs(result):
            if run.status == OOM:  # not stored: counted apart, and a later run of the sweep retries it
                self.statuses[OOM] = self.statuses.get(OOM, 0) + (run.run_id not in self.out_of_memory)
                self.out_of_memory.add(run.run_id)
                continue
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
        return [(c, text) for c, text in runs if c.run_id not in self.written | self.out_of_memory]

    def write_failed(self) -> None:
        """Store the runs of trials that failed for good as "error" rows."""
        failed = self.failed
        if failed:
            self.store.write(self.sweep, errors=failed, idempotent=True)
            self.written.update(c.run_id for c, _ in failed)
            self.statuses["error"] = self.statuses.get("error", 0) + len(failed)

    def on_step_end(self, iteration, trials, **info) -> None:
        self.trials = trials
        if self.bar is not None:  # keeps elapsed, ETA and running trials current between results
            self.progress()

    def on_experiment_end(self, trials, **info) -> None:
        self.trials = trials
        self.progress(force=True)
        if self.bar is not None:  # a second round (runner.py) starts a new bar where this one ended
            self.bar.close()
            self.bar = None

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

    @property
    def running(self) -> int:
        """Trials running now (Tune's Trial.status)."""
        return sum(getattr(t, "status", None) == "RUNNING" for t in self.trials)

    def progress(self, force: bool = False) -> None:
        """Runs done of the total, generalized, running trials and ETA: a live bar when the stream is a
        terminal, else a plain line at most every PRINT_EVERY_S (and always when `force`, at the end)."""
        if self.quiet:
            return
        out = self.stream or sys.stderr
        now = time.monotonic()
        if _is_terminal(out):
            if force or self.bar is None or now - self.last_print >= BAR_EVERY_S:
                self.last_print = now
                self._draw_bar(out)
            return
        if not force and now - self.last_print < PRINT_EVERY_S:
            return
        self.last_print = now
        elapsed = now - self.start
        new = self.done - self.done_before
        left = self.total - self.done
        eta = f"{elapsed / new * left:.0f}s" if new and left else "-"
        print(
            f"[{self.sweep}] {self.done}/{self.total} runs done, {self.generalized} generalized"
            f" (this session), {self.running} trials running, elapsed {elapsed:.0f}s, ETA {eta}",
            file=out,
            flush=True,
        )

    def _draw_bar(self, out: TextIO) -> None:
        if self.bar is None:
            from tqdm import tqdm

            sized = min(_terminal_size(out)) > 0
            self.bar = tqdm(
                total=self.total,
                initial=self.done_before,
                desc=f"[{self.sweep}]",
                file=out,
                bar_format=BAR_FORMAT,
                smoothing=0,  # ETA from the session's mean rate, as the plain lines compute it
                # A terminal that reports no size (e.g. under `script`) would get an empty bar: 100 x 20.
                dynamic_ncols=sized,
                ncols=None if sized else 100,
                nrows=None if sized else 20,
                mininterval=BAR_EVERY_S,
            )
            self.bar.start_t -= time.monotonic() - self.start  # elapsed counts from the sweep's start
        self.bar.n = self.done
        self.bar.set_postfix_str(f"{self.generalized} generalized, {self.running} running", refresh=False)
        self.bar.refresh()


def _terminal_size(stream: TextIO) -> tuple[int, int]:
    try:
        return tuple(os.get_terminal_size(stream.fileno()))
    except (AttributeError, OSError, ValueError):
        return (0, 0)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
