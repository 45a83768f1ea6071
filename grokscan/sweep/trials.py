"""What one Ray Tune trial trains, writes and reports (shared by the grid and the adaptive runner).

A trial's config names its runs in one of three ways: {"pack": i} (pack i of a grid sweep's plan),
{"runs": [config dicts]} (a pack a grokscan searcher proposed), or a Tune searcher's sampled point (one run
on top of the sweep's fixed fields). The trial trains them as one pack and writes each eval's finished runs
to the store itself, before it reports them: the driver only ever hears of runs that are already on disk, so
killing it at any moment loses none of them. What travels through Tune is small and does not grow with the
curves: per run its id, status, whether it generalized and its wall time (RESULT_KEY), plus a Tune
searcher's objective. A pack whose training raises is written as "error" rows carrying the exception's
message; an adaptive proposal that is no valid RunConfig is stored as an "error" row with the reason. A
CUDA out-of-memory is never an error row: the engine splits the pack (engine.loop), and a run that does not
fit even alone is reported with status OOM and not stored, so a later `grokscan run` retries it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from grokscan.config import RunConfig
from grokscan.errors import UserError
from grokscan.result import RunResult
from grokscan.results.store import Store
from grokscan.results.weights import load_weights
from grokscan.sweep.adaptive import objective, run_objective
from grokscan.sweep.ray_env import ray, tune
from grokscan.sweep.record import recording_of

RESULT_KEY = "grokscan_runs"
OOM = "oom"  # a reported status that is never stored: the run did not fit in device memory alone
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Reported:
    """What the driver learns of one stored run."""

    run_id: str
    status: str
    generalized: bool
    wall_s: float


def trial_configs(config: dict, packs: list[list[dict]], fixed: dict) -> list[RunConfig]:
    """A trial's runs: a planned pack (grid sweeps), the runs a grokscan searcher proposed, or a Tune
    searcher's sampled point on top of the fixed fields (one run; UserError if it is no valid config)."""
    if "pack" in config:
        return [RunConfig(**c) for c in packs[config["pack"]]]
    if "runs" in config:
        return [RunConfig(**c) for c in config["runs"]]
    return [RunConfig.from_dict({**fixed, **config})]


def reported_runs(result: dict) -> list[Reported]:
    """The runs one trial result reports (none in results without RESULT_KEY)."""
    return [Reported(*r) for r in json.loads(result.get(RESULT_KEY, "[]"))]


def _payload(runs: list[Reported]) -> str:
    return json.dumps([[r.run_id, r.status, r.generalized, r.wall_s] for r in runs])


def error_message(err: BaseException) -> str:
    """The one line an "error" row carries: the exception's type and message."""
    return " ".join(f"{type(err).__name__}: {err}".split())[:MAX_ERROR_CHARS]


def _device(configs: list[RunConfig]) -> dict:
    """train_runs' device and pack sizing. CPU: the trial's runs as one pack (the driver sized it). GPU:
    packs sized on this worker from its device's free memory, within the trial's GPU share (Ray sets
    CUDA_VISIBLE_DEVICES, so the assigned GPU is cuda:0)."""
    if not ray.get_gpu_ids():
        return dict(device="cpu", pack_size=len(configs))
    share = ray.get_runtime_context().get_assigned_resources().get("GPU", 1.0)
    return dict(device="cuda", pack_size=None, memory_share=min(1.0, share))


def pack_trial(
    config: dict,
    packs: list[list[dict]],
    fixed: dict,
    metric: str | None,
    storage: str,
    sweep: str,
    record: dict | None = None,
) -> None:
    """The trial function: train the trial's runs as one pack on its device, recording what the sweep's
    `record` setting asks for; write, then report, the runs that end at each eval."""
    store = Store(storage)
    try:
        configs = trial_configs(config, packs, fixed)
    except UserError as err:  # an adaptive proposal outside what RunConfig allows
        point = {**fixed, **config}
        run_id = store.write_invalid(sweep, point, error_message(err))
        out = {RESULT_KEY: _payload([Reported(run_id, "error", False, 0.0)])}
        if metric:  # the worst a run can score: never reached, as a censored run
            out[metric] = objective(metric, {"steps": point.get("steps", RunConfig().steps)})
        tune.report(out)
        return
    reported: set[str] = set()
    rec, tap = recording_of(record or {}, storage)

    def report(results: list[RunResult]) -> None:  # once per eval at which runs end: one write, one report
        if tap is not None:  # before the runs rows: a run stored as done has its weights
            tap.write_final(results)
        store.write(sweep, results, idempotent=True)
        reported.update(r.run_id for r in results)
        runs = [Reported(r.run_id, r.status, r.step_gen is not None, r.wall_s) for r in results]
        out = {RESULT_KEY: _payload(runs)}
        if metric:  # a Tune searcher's trial is one run, so it reports once
            out[metric] = run_objective(metric, results[0])
        tune.report(out)

    from grokscan.engine.loop import MemberOutOfMemory, train_runs  # torch: on the worker, not the driver
    from grokscan.engine.recording import recording
    from grokscan.engine.tickets import parent_weights

    try:
        with recording(rec), parent_weights(lambda run_id: load_weights(storage, run_id)):
            train_runs(configs, on_finished=report, **_device(configs))
    except MemberOutOfMemory as err:  # the other runs are stored; these are not, and say why on stderr
        print(f"grokscan: {err}", file=sys.stderr, flush=True)
        out = {RESULT_KEY: _payload([Reported(c.run_id, OOM, False, 0.0) for c in err.configs])}
        if metric:
            out[metric] = objective(metric, {"steps": configs[0].steps})
        tune.report(out)
    except Exception as err:  # the pack failed: its unfinished runs are stored with the reason, once
        left = [c for c in configs if c.run_id not in reported]
        store.write(sweep, errors=[(c, error_message(err)) for c in left], idempotent=True)
        out = {RESULT_KEY: _payload([Reported(c.run_id, "error", False, 0.0) for c in left])}
        if metric:
            out[metric] = objective(metric, {"steps": configs[0].steps})
        tune.report(out)
