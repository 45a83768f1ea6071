"""How a grid sweep's runs are cut into packs, one Ray trial each: the pack size and the packs.

`grokscan run` and `grokscan run --dry-run` both call `choose_pack_size` and `plan_packs`, so a dry run
prints the packs a run would train. On GPUs a trial gets up to GPU_PACK_MAX runs of one shape and cuts them
into packs that fit its own device's free memory (`engine.memory.default_pack_size`, on the worker): the
driver, often a CPU head node, knows nothing of the GPUs. No ray or torch import.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from grokscan.config import RunConfig
from grokscan.engine.packing import CPU_PACK_MAX, make_packs
from grokscan.errors import UserError
from grokscan.sweep.space import GPUS_ALLOWED, Sweep

GPU_PACK_MAX = 1024  # runs per GPU trial; the trial trains them in packs that fit its device
PACKS_PER_SLOT = 4  # CPU: several packs per slot, so that slots finishing early take more work


def trial_gpus(sweep: Sweep, gpus_per_trial: float | None) -> float:
    """GPUs per trial: --gpus-per-trial, else the file's resources["gpu"]; a trial trains on one device,
    so more than 1 is refused."""
    gpus = sweep.resources["gpu"] if gpus_per_trial is None else gpus_per_trial
    if not 0 <= gpus <= 1:
        raise UserError(f"gpus_per_trial = {gpus:g}: {GPUS_ALLOWED}")
    return gpus


def local_cpu_slots() -> int:
    """CPU slots of an embedded local Ray (`ray_env.init_ray` starts it with os.cpu_count()), known
    without starting Ray: what a dry run sizes CPU packs for."""
    return os.cpu_count() or 1


def choose_pack_size(
    sweep: Sweep,
    configs: Sequence[RunConfig],
    *,
    requested: int | None,
    gpus_per_trial: float | None,
    cpu_slots: int,
) -> int:
    """Runs per trial for `configs` (the runs left to train): `requested` (--pack-size), else the file's
    pack_size, else `default_pack_size`. `cpu_slots`: the Ray cluster's CPU slots (a run asks the running
    cluster, a dry run `local_cpu_slots()`: so a dry run with --address may plan other CPU packs)."""
    if requested or sweep.pack_size:
        return requested or sweep.pack_size
    return default_pack_size(configs, trial_gpus(sweep, gpus_per_trial), cpu_slots)


def default_pack_size(configs: Sequence[RunConfig], gpus_per_trial: float, cpu_slots: int) -> int:
    """GPU: GPU_PACK_MAX runs per trial (the trial sizes its packs from its device). CPU: PACKS_PER_SLOT
    packs per slot (load balance), at most CPU_PACK_MAX (larger CPU packs are slower per member)."""
    if gpus_per_trial > 0:
        return GPU_PACK_MAX
    return max(1, min(CPU_PACK_MAX, math.ceil(len(configs) / (PACKS_PER_SLOT * max(1, cpu_slots)))))


def plan_packs(configs: Sequence[RunConfig], size: int) -> list[list[RunConfig]]:
    """`configs` grouped into packs of at most `size` runs of one shape (`engine.packing.make_packs`)."""
    return [[configs[i] for i in pack] for pack in make_packs(configs, size)]
