"""Run a sweep on Ray Tune: `run_sweep`, the entry point for grid and adaptive sweeps alike.

A grid sweep runs one trial per pack (`pack_plan`); an adaptive one goes to `search_runner`, where the
search algorithm proposes the trials. Either way the trials write their finished runs to the store
(`trials`), a driver-side callback counts them (`store_callback`), and runs already in the store are never
trained again: rerunning a sweep after a crash trains only what is missing.
"""

from __future__ import annotations

import time

from grokscan.results.store import Store
from grokscan.sweep.compaction import compact_on_cluster
from grokscan.sweep.pack_plan import choose_pack_size, plan_packs, trial_gpus
from grokscan.sweep.parents import check_parents
from grokscan.sweep.ray_env import check_store_visible, cluster_cpu_slots, init_ray, tune
from grokscan.sweep.search_runner import run_search
from grokscan.sweep.space import Sweep
from grokscan.sweep.store_callback import StoreCallback, SweepOutcome
from grokscan.sweep.trials import pack_trial, trial_configs
from grokscan.sweep.tuner import fit_trials


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
    compact: bool = True,
) -> SweepOutcome:
    """Train every run of `sweep` not yet in `storage` on Ray Tune and write results there (an adaptive
    sweep: the runs its search algorithm proposes; `pack_size` applies to grids only).

    Args:
        sweep: from `grokscan.sweep.space.load_space`.
        storage: results directory or s3://bucket/prefix.
        address: Ray cluster to join (default: $RAY_ADDRESS, else an embedded local Ray).
        gpus_per_trial: GPU share per trial (default: the file's resources["gpu"]).
        pack_size: runs per trial (default: `pack_plan.choose_pack_size`).
        max_concurrent: trials at once (default: the file's max_concurrent, else as resources allow).
        max_failures: retries of a failed trial before its runs are stored with status "error".
        quiet: no progress lines on stderr.
        compact: merge the sweep's fragments once it ends (`grokscan.results.store.compact`); trials write
            one fragment pair per eval at which runs end, and every load opens every fragment.
    """
    if sweep.search is not None:
        kw = dict(gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, max_failures=max_failures)
        return run_search(sweep, storage, address=address, quiet=quiet, compact=compact, **kw)
    start = time.monotonic()
    store = Store(storage)
    done = store.done_run_ids(sweep.name)
    todo = [c for c in sweep.configs if c.run_id not in done]
    skipped = len(sweep.configs) - len(todo)
    if not todo:
        return SweepOutcome(len(sweep.configs), skipped, 0, 0, time.monotonic() - start)
    check_parents(storage, todo)
    init_ray(address)
    root = check_store_visible(storage)
    size = choose_pack_size(
        sweep, todo, requested=pack_size, gpus_per_trial=gpus_per_trial, cpu_slots=cluster_cpu_slots()
    )
    packs = [[c.to_dict() for c in p] for p in plan_packs(todo, size)]
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
            tune.with_parameters(
                pack_trial,
                packs=packs,
                fixed={},
                metric=None,
                storage=root,
                sweep=sweep.name,
                record=sweep.record,
            ),
            callback,
            gpus=trial_gpus(sweep, gpus_per_trial),
            param_space={"pack": tune.grid_search(pending)},
            max_concurrent=max_concurrent,
            max_failures=max_failures,
            write_errors=last,
        )
        pending = sorted({cfg["pack"] for cfg, _ in callback.failed_trials})
        if not pending:
            break
    return callback.outcome(
        len(sweep.configs), skipped, start, compact_on_cluster(root, sweep.name) if compact else None
    )
