"""What one Ray Tune trial trains and reports (shared by the grid and the adaptive runner).

A trial's config names its runs in one of three ways: {"pack": i} (pack i of a grid sweep's plan),
{"runs": [config dicts]} (a pack a grokscan searcher proposed), or a Tune searcher's sampled point (one run
on top of the sweep's fixed fields). The trial trains them as one pack and reports, once per eval, the runs
that finished at that eval under RESULT_KEY (and a Tune searcher's metric).
"""

from __future__ import annotations

import json

from grokscan.config import RunConfig
from grokscan.result import RunResult, result_from_dict, result_to_dict
from grokscan.sweep.adaptive import run_objective
from grokscan.sweep.ray_env import ray, tune

RESULT_KEY = "grokscan_run"


def trial_configs(config: dict, packs: list[list[dict]], fixed: dict) -> list[RunConfig]:
    """A trial's runs: a planned pack (grid sweeps), the runs a grokscan searcher proposed, or a Tune
    searcher's sampled point on top of the fixed fields (one run)."""
    if "pack" in config:
        return [RunConfig(**c) for c in packs[config["pack"]]]
    if "runs" in config:
        return [RunConfig(**c) for c in config["runs"]]
    return [RunConfig.from_dict({**fixed, **config})]


def reported_runs(result: dict) -> list[RunResult]:
    """The finished runs in one reported trial result (none in results without RESULT_KEY)."""
    return [result_from_dict(r) for r in json.loads(result.get(RESULT_KEY, "[]"))]


def pack_trial(config: dict, packs: list[list[dict]], fixed: dict, metric: str | None) -> None:
    """The trial function: train the trial's runs as one pack on its device, reporting as runs finish."""
    from grokscan.engine.loop import train_runs  # torch: loaded on the worker, not by the driver

    configs = trial_configs(config, packs, fixed)
    device = "cuda" if ray.get_gpu_ids() else "cpu"

    def report(results: list[RunResult]) -> None:  # one report per eval: each is a round trip to the driver
        out = {RESULT_KEY: json.dumps([result_to_dict(r) for r in results])}
        if metric:  # a Tune searcher's trial is one run, so it reports once
            out[metric] = run_objective(metric, results[0])
        tune.report(out)

    train_runs(configs, device=device, pack_size=len(configs), on_finished=report)
