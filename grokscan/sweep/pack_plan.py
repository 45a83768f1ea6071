"""How a grid sweep's runs are cut into packs, one Ray trial each: the pack size and the packs.

`grokscan run` and `grokscan run --dry-run` both call `choose_pack_size` and `plan_packs`, so a dry run
prints the packs a run would train. No ray import; torch only for a GPU sweep's memory estimate (lazily).
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Sequence

from grokscan.config import RunConfig
from grokscan.engine.packing import CPU_PACK_MAX, make_packs
from grokscan.sweep.space import Sweep

GPU_PACK_MAX = 1024
DEFAULT_GPU_BYTES = 16 * 2**30  # GPU memory assumed when the driver sees no GPU (V100-16GB, T4, A4000)
PACKS_PER_SLOT = 4  # CPU: several packs per slot, so that slots finishing early take more work


def trial_gpus(sweep: Sweep, gpus_per_trial: float | None) -> float:
    """GPUs per trial: --gpus-per-trial, else the file's resources["gpu"]."""
    return sweep.resources["gpu"] if gpus_per_trial is None else gpus_per_trial


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
    """GPU: the largest pack of the most memory-hungry shape in `configs` that fits the trial's share of a
    GPU (`engine.memory.fitting_pack_size`, at most GPU_PACK_MAX). CPU: PACKS_PER_SLOT packs per slot
    (load balance), at most CPU_PACK_MAX (larger CPU packs are slower per member)."""
    if gpus_per_trial > 0:
        from grokscan.engine import memory  # torch: needed to size GPU packs only, never on a CPU driver

        return memory.fitting_pack_size(configs, gpu_free_bytes(gpus_per_trial), cap=GPU_PACK_MAX)
    return max(1, min(CPU_PACK_MAX, math.ceil(len(configs) / (PACKS_PER_SLOT * max(1, cpu_slots)))))


def gpu_free_bytes(gpus_per_trial: float) -> int:
    """A trial's share of GPU memory: the least free memory over this machine's GPUs as nvidia-smi reports
    it, or DEFAULT_GPU_BYTES where there is none (a CPU head node plans for the smallest common GPU), times
    min(1, gpus_per_trial): fractional trials share a device, and a trial trains on one device. nvidia-smi,
    not torch.cuda.mem_get_info: a CUDA context in the driver would hold GPU memory for the whole sweep."""
    try:
        query = ["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"]
        out = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True).stdout
        free = min(int(mib) for mib in out.split()) * 2**20
    except (OSError, subprocess.SubprocessError, ValueError):
        free = DEFAULT_GPU_BYTES
    return int(free * min(1.0, gpus_per_trial))


def plan_packs(configs: Sequence[RunConfig], size: int) -> list[list[RunConfig]]:
    """`configs` grouped into packs of at most `size` runs of one shape (`engine.packing.make_packs`)."""
    return [[configs[i] for i in pack] for pack in make_packs(configs, size)]
