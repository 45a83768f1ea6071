"""Multi-node behaviour on a local ray.cluster_utils.Cluster (slow: starts several Ray nodes)."""

from __future__ import annotations

import textwrap
import threading
import time

import pyarrow.dataset as ds
import pytest

from grokscan.results.store import Store, load_runs
from grokscan.sweep.space import load_space

SPACE = """
from ray import tune
name = "nodes"
param_space = {"p": 23, "width": 32, "lr": 1e-2, "steps": 600, "eval_every": 50, "patience": 1000,
               "seed": tune.grid_search(list(range(8)))}
"""


@pytest.mark.slow
def test_runs_on_a_lost_worker_node_are_retried_and_land_once(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    from grokscan.sweep.runner import run_sweep

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 80 * 2**20})
    workers = [cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20) for _ in range(3)]
    cluster.wait_for_nodes()
    path = tmp_path / "nodes.py"
    path.write_text(textwrap.dedent(SPACE))
    storage = str(tmp_path / "results")
    killed = []

    def kill_a_worker_after_first_results() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not Store(storage).done_run_ids("nodes"):
            time.sleep(0.5)
        cluster.remove_node(workers[0])  # busy: every node runs a trial while runs are left
        killed.append(time.monotonic())

    try:
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        killer = threading.Thread(target=kill_a_worker_after_first_results, daemon=True)
        killer.start()
        outcome = run_sweep(load_space(path), storage, pack_size=1, max_failures=3, quiet=True, compact=False)
        killer.join(timeout=60)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert killed, "the worker node was never removed"
    raw = ds.dataset(f"{storage}/runs", partitioning="hive").to_table().to_pandas()  # no dedupe
    assert len(raw) == 8 and raw["run_id"].is_unique  # each run landed exactly once
    runs = load_runs(storage, "nodes")
    assert set(runs["status"]) == {"ok"} and (runs["steps_run"] == 600).all()
    assert outcome.errors == 0 and outcome.written == 8 and outcome.retries >= 1
