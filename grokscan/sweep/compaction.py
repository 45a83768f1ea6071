"""A sweep's store compacted where trials run, once the sweep ends: the driver holds no run data, not even
while the fragments are merged (their size grows with the curves)."""

from __future__ import annotations

from grokscan.results.store import CompactionStats, compact
from grokscan.sweep.ray_env import ray


@ray.remote(num_cpus=0)
def _compact(root: str, sweep: str) -> CompactionStats:
    return compact(root, sweep)


def compact_on_cluster(root: str, sweep: str) -> CompactionStats:
    """`grokscan.results.store.compact` of one sweep, run as a Ray task (`root` as trials reach it)."""
    return ray.get(_compact.remote(root, sweep))
