"""Which runs can train together as one pack (torch-free: a driver plans packs without loading torch).

A pack is a set of runs whose tensors have identical shapes (same task, model, optimizer, dtype, training
row count, ...); members may differ in the PER_MEMBER fields, each of which the engine keeps as a
per-member column.
"""

from __future__ import annotations

from collections.abc import Sequence

from grokscan.config import RunConfig

CPU_PACK_MAX = 16  # past ~32 members a CPU pack's buffers are mmapped and faulted in every step
# glibc malloc settings of the processes grokscan trains in (Ray's workers: sweep.ray_env.init_ray), read
# as a process starts: keep freed memory for reuse instead of trimming the heap (or unmapping blocks over
# 32 MB). A pack's activations are freed every step and were otherwise page-faulted back in, zeroed, at
# the next one. A process's memory then stays at its peak so far.
WORKER_MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**40)}
PER_MEMBER = frozenset(
    {"seed", "split_seed", "frac", "label_noise", "alpha", "lr", "weight_decay", "beta1", "beta2", "eps"}
    | {"momentum", "warmup", "grokfast_alpha", "grokfast_lamb", "steps", "threshold", "patience"}
    | {"embed_lr", "embed_weight_decay"}  # per element of a member's lr / weight decay (engine.optim)
    | {"ticket", "parent", "prune_rate", "prune_scope"}  # a derived run's start and mask are per member
)


def pack_key(cfg: RunConfig) -> tuple:
    """Runs with equal keys can share a pack: every field but PER_MEMBER, plus the training row count."""
    return (*(v for k, v in cfg.to_dict().items() if k not in PER_MEMBER), cfg.n_train)


def make_packs(configs: Sequence[RunConfig], pack_size: int) -> list[list[int]]:
    """Indices of `configs` grouped into packs of at most pack_size, in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for i, cfg in enumerate(configs):
        groups.setdefault(pack_key(cfg), []).append(i)
    return [g[s : s + pack_size] for g in groups.values() for s in range(0, len(g), pack_size)]
