"""Ray for grokscan: its process-wide switches, set before ray is first imported, and `init_ray`.

Ray reads some switches from the environment once, when it is imported, so every grokscan module that uses
ray takes `ray` and `tune` from here (``from grokscan.sweep.ray_env import ray, tune``) instead of importing
ray itself, and `space` imports this module before a search-space file's own ``from ray import tune``.
To join a cluster, $RAY_ADDRESS must be set before that first import (`grokscan run --address` sets it).
"""

from __future__ import annotations

import os
import socket
import uuid


def _set_switches() -> None:
    # Tune's per-trial CSV/JSON/TensorBoard loggers cost time per result and duplicate the store.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # An embedded Ray listens on 127.0.0.1 only: with this switch at 0 (Ray's default on macOS and Windows)
    # Ray keeps a local-only instance on loopback. Joining a cluster needs real addresses.
    if not os.environ.get("RAY_ADDRESS"):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


_set_switches()

import ray  # noqa: E402
from ray import tune  # noqa: E402

from grokscan.engine.packing import WORKER_MALLOC_ENV  # noqa: E402
from grokscan.errors import UserError  # noqa: E402

__all__ = ["ray", "tune", "init_ray", "cluster_cpu_slots", "check_store_visible"]


def init_ray(address: str | None = None, num_cpus: int | None = None, object_store_mb: int = 512) -> None:
    """Join `address` (or $RAY_ADDRESS), else start an embedded local Ray with `num_cpus` CPU slots
    (default: os.cpu_count()): loopback only, dashboard off, Ray's token authentication left on (its
    default for a new local instance). Does nothing when Ray is already initialized."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    common = {"log_to_driver": False, "logging_level": "ERROR", "configure_logging": True}
    # Trials train in Ray's workers; this is merged with a submitted job's runtime_env (sweep.jobs).
    common["runtime_env"] = {"env_vars": dict(WORKER_MALLOC_ENV)}
    if address:
        try:
            ray.init(address=address, **common)
        except ConnectionError as err:
            raise UserError(f"--address {address}: cannot join a Ray cluster there ({err})") from None
    else:
        ray.init(
            address="local",  # a new instance even when `ray start` left one running on this machine
            num_cpus=num_cpus or os.cpu_count(),
            include_dashboard=False,
            object_store_memory=object_store_mb * 2**20,
            **common,
        )


def cluster_cpu_slots() -> int:
    """CPU slots of the running Ray cluster (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


@ray.remote(num_cpus=0)
def _sees(path: str) -> tuple[bool, str]:
    return os.path.isfile(path), socket.gethostname()


def check_store_visible(storage: str, timeout_s: float = 120.0) -> str:
    """The store root as trials reach it: an object-store URI as is, a local directory as an absolute path
    (Tune runs trials in their own working directories). Trials write the store themselves, so every node
    of the cluster must see a local directory: a probe file written here must be visible from each alive
    node (one zero-CPU task per node). Raises UserError naming the nodes that do not see it."""
    if "://" in storage:
        return storage
    root = os.path.abspath(storage)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    if len(nodes) < 2:
        return root
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = os.path.join(root, f".probe-{uuid.uuid4().hex}")
    os.makedirs(root, exist_ok=True)
    with open(probe, "wb"):
        pass
    try:
        tasks = [
            _sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                probe
            )
            for n in nodes
        ]
        seen = ray.get(tasks, timeout=timeout_s)
    finally:
        os.remove(probe)
    blind = [
        f"{n['NodeManagerAddress']} ({host})" for n, (ok, host) in zip(nodes, seen, strict=True) if not ok
    ]
    if blind:
        raise UserError(
            f"--storage {storage}: {root} is not visible from Ray node(s) {', '.join(blind)}; trials write "
            "the store themselves, so on a cluster use s3://bucket/prefix or a filesystem shared at one path"
        )
    return root
