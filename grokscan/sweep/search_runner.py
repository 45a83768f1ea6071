"""Adaptive sweeps on Ray Tune: a Tune searcher (e.g. OptunaSearch) or grokscan's CriticalFraction proposes
the trials; results land in the store as for grids (`run_sweep` hands adaptive sweeps to `run_search`).

Resuming: runs of the sweep already stored are not trained again. A Tune searcher is warm-started with them
(`add_evaluated_point`) and trains num_samples minus their count; CriticalFraction replays its proposals
and takes stored outcomes until it reaches a point that has none.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from grokscan.config import RunConfig
from grokscan.errors import UserError
from grokscan.results.store import Store, load_runs
from grokscan.sweep.adaptive import CriticalFraction, Search, objective
from grokscan.sweep.compaction import compact_on_cluster
from grokscan.sweep.pack_plan import trial_gpus
from grokscan.sweep.ray_env import check_store_visible, init_ray, tune
from grokscan.sweep.space import Sweep
from grokscan.sweep.store_callback import StoreCallback, SweepOutcome
from grokscan.sweep.trials import pack_trial, reported_runs, trial_configs
from grokscan.sweep.tuner import fit_trials


def _stored(storage: str, sweep: str) -> pd.DataFrame:
    """The sweep's finished runs (ok or diverged), nulls as None."""
    runs = load_runs(storage, sweep)
    runs = runs[runs["status"] != "error"]
    return runs.astype(object).where(runs.notna(), None)


def run_search(
    sweep: Sweep,
    storage: str,
    *,
    address: str | None,
    gpus_per_trial: float | None,
    max_concurrent: int | None,
    max_failures: int,
    quiet: bool,
    compact: bool = True,
) -> SweepOutcome:
    """Train the runs `sweep.search` proposes that are not yet in `storage` (see `runner.run_sweep`)."""
    start, search, store = time.monotonic(), sweep.search, Store(storage)
    stored = _stored(storage, sweep.name)
    if search.critical:
        alg = _Bisect(search.alg, stored)
        reused, num_samples, left = alg.reused, -1, alg.ready is not None
    else:
        alg, reused = search.alg, _warm_start(search, stored)
        num_samples = search.num_samples - reused
        left = num_samples > 0
    if not left:
        return SweepOutcome(reused, reused, 0, 0, time.monotonic() - start)
    init_ray(address)
    root = check_store_visible(storage)
    fixed = {} if search.critical else search.fixed  # a CriticalFraction trial carries whole configs
    callback = StoreCallback(
        store, sweep.name, sweep.max_runs, reused, quiet, lambda c: trial_configs(c, [], fixed)
    )
    metric = None if search.critical else search.metric
    fit_trials(
        sweep,
        tune.with_parameters(
            pack_trial,
            packs=[],
            fixed=fixed,
            metric=metric,
            storage=root,
            sweep=sweep.name,
            record=sweep.record,
        ),
        callback,
        gpus=trial_gpus(sweep, gpus_per_trial),
        param_space={},
        max_concurrent=max_concurrent,
        max_failures=max_failures,
        search_alg=alg,
        num_samples=num_samples,
    )
    reused = alg.reused if search.critical else reused
    stats = compact_on_cluster(root, sweep.name) if compact else None
    return callback.outcome(len(callback.written) + reused, reused, start, stats)


def _warm_start(search: Search, stored: pd.DataFrame) -> int:
    """Give the searcher its space, metric and mode, and the sweep's stored runs that belong to this search
    (same fixed fields); returns their count."""
    if not search.alg.set_search_properties(search.metric, search.mode, dict(search.domains)):
        raise UserError(
            f"search_alg {type(search.alg).__name__} already has a search space: leave it out of the "
            "searcher and put the sampled domains in param_space"
        )
    count = 0
    for row in stored.to_dict("records"):
        params = {k: row[k] for k in search.domains}
        if RunConfig.from_dict({**search.fixed, **params}).run_id != row["run_id"]:
            continue  # a run of another search under the same sweep name (e.g. other --set values)
        try:
            search.alg.add_evaluated_point(params, objective(search.metric, row))
        except NotImplementedError:
            return 0  # a searcher that cannot be warm-started samples afresh
        count += 1
    return count


class _Bisect(tune.search.Searcher):
    """Feeds CriticalFraction's proposals to Tune as trials ({"runs": [...]}: one pack of seeds per point)
    and its outcomes back; points whose runs are all stored are answered from the store at once."""

    def __init__(self, alg: CriticalFraction, stored: pd.DataFrame) -> None:
        super().__init__()
        self.alg = alg
        # run_id -> generalized within the budget (None: the run failed)
        self.outcomes: dict[str, bool | None] = {
            r: g is not None for r, g in zip(stored.run_id, stored.step_gen, strict=True)
        }
        self.live: dict[str, tuple[int, float, list[RunConfig]]] = {}
        self.reused = 0  # stored runs the search has used
        self.ready = self._next()

    def _next(self) -> tuple[int, float, list[RunConfig]] | None:
        """The next proposal that needs training; stored outcomes are observed on the way."""
        while (proposal := self.alg.propose()) is not None:
            cell, x = proposal
            configs = self.alg.configs(cell, x)
            self.reused += sum(c.run_id in self.outcomes for c in configs)
            if any(c.run_id not in self.outcomes for c in configs):
                return cell, x, configs
            self.alg.observe(cell, x, [self.outcomes[c.run_id] for c in configs])
        return None

    def suggest(self, trial_id: str) -> dict | None:
        proposal, self.ready = self.ready or self._next(), None
        if proposal is None:
            return tune.search.Searcher.FINISHED if self.alg.finished else None
        self.live[trial_id] = proposal
        return {"runs": [c.to_dict() for c in proposal[2] if c.run_id not in self.outcomes]}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        for run in reported_runs(result):
            self.outcomes[run.run_id] = None if run.status == "error" else run.generalized

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if result:
            self.on_trial_result(trial_id, result)
        cell, x, configs = self.live.pop(trial_id)
        self.alg.observe(cell, x, [self.outcomes.get(c.run_id) for c in configs])
