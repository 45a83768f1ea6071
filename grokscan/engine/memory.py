"""How many runs fit in a pack: estimated peak device memory of a pack, and the largest pack that fits.

Computed from the config alone (parameter layout, dtype, optimizer and filter state, activations from the
model entry's `row_elements`), without building the task's table.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from grokscan.config import RunConfig
from grokscan.engine.models import Model
from grokscan.engine.packing import CPU_PACK_MAX, pack_key
from grokscan.registry import GRAD_FILTERS, OPTIMIZERS, TASKS
from grokscan.tasks.base import Dims

EVAL_ELEMENTS = 2**25  # activations per eval chunk: bounds eval memory whatever the pack size
# pack_bytes checked against the peak RSS of 64-256-member CPU packs (glibc unmaps buffers over 32 MB, so
# RSS follows allocations there): estimate / measured 1.2 (default mlp), 1.1 (default transformer).
EVAL_PEAK = 0.75  # live share of the forward tensors in a no-grad eval (measured ~0.6)
FIXED_COPIES = 3  # parameters, gradient and 1 P of update temporaries, besides optimizer/filter state


def eval_chunk(cfg: RunConfig, dims: Dims) -> int:
    """Members evaluated at once: about EVAL_ELEMENTS activations whatever the pack size."""
    widest = max(cfg.width * dims.n_inputs, cfg.d_mlp or 0, dims.n_classes * (dims.n_outputs or 1))
    return max(1, EVAL_ELEMENTS // (TASKS.get(cfg.task).eval_rows(cfg) * widest))


def pack_bytes(cfg: RunConfig, members: int) -> int:
    """Estimated peak device bytes of a pack of `members` runs shaped like `cfg` (upper-side estimate).

    Per member: P parameters x dtype size for each of parameters, gradient, update temporaries and the
    optimizer's and gradient filter's state copies; its row data (`Task.data_bytes`: row ids, labels and
    train mask; a sequence run's own tokens and answers too). Plus the larger (they never coexist) of
    training activations (the model's training peak per row x rows per step, per member) and eval
    activations (EVAL_PEAK x forward elements x all rows an eval computes, for one eval chunk of members
    only). Not counted: shared tensors (task table, hyperparameters), the CUDA context, allocator rounding
    and caching: `pack_size_for`'s headroom covers them.
    """
    task = TASKS.get(cfg.task)
    dims = task.dims(cfg)
    model = Model(cfg, dims)
    state = OPTIMIZERS.get(cfg.optimizer).state_copies + GRAD_FILTERS.get(cfg.grad_filter).copies(cfg)
    size = torch.finfo(getattr(torch, cfg.dtype)).bits // 8
    train_row, forward_row = model.arch.row_elements(cfg, dims)
    fixed = model.n_params * (FIXED_COPIES + state) * size + task.data_bytes(cfg)
    train_act = train_row * size * (cfg.batch_size or cfg.n_train) * members
    chunk = min(members, eval_chunk(cfg, dims))
    eval_act = EVAL_PEAK * forward_row * size * task.eval_rows(cfg) * chunk
    return int(fixed * members + max(train_act, eval_act))


def member_bytes(cfg: RunConfig) -> int:
    """Estimated peak device bytes of one member of `cfg`'s shape trained alone (see `pack_bytes`)."""
    return pack_bytes(cfg, 1)


def pack_size_for(cfg: RunConfig, free_bytes: int, cap: int = 1024, headroom: float = 0.5) -> int:
    """The largest pack (1 to cap members) whose `pack_bytes` fits in free_bytes x (1 - headroom); the
    headroom is kept for what the estimate leaves out. A lone member that does not fit still gets 1."""
    if cap < 1 or not 0 <= headroom < 1:
        raise ValueError(f"pack_size_for needs cap >= 1 and 0 <= headroom < 1, got {cap}, {headroom}")
    budget, lo, hi = free_bytes * (1 - headroom), 1, cap
    while lo < hi:  # pack_bytes grows with members
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if pack_bytes(cfg, mid) <= budget else (lo, mid - 1)
    return lo


def fitting_pack_size(configs: Sequence[RunConfig], free_bytes: int, cap: int = 1024) -> int:
    """The largest pack size (at most cap) at which a pack of every shape in `configs` fits free_bytes."""
    return min(pack_size_for(c, free_bytes, cap=cap) for c in {pack_key(c): c for c in configs}.values())


def default_pack_size(configs: Sequence[RunConfig], device: torch.device, share: float = 1.0) -> int:
    """CPU_PACK_MAX on CPU (larger packs' buffers pass glibc's 32 MB mmap threshold and each step
    page-faults them anew: up to 2x slower per member, benchmarks/README.md). On CUDA, measured where the
    packs train: the largest pack of the most memory-hungry shape that fits this process's budget, the
    device's free memory (torch.cuda.mem_get_info) but at most `share` x its total (trials sharing a GPU:
    each keeps to its share whatever the others hold at the moment)."""
    if device.type != "cuda":
        return CPU_PACK_MAX
    free, total = torch.cuda.mem_get_info(device)
    return fitting_pack_size(configs, min(free, int(total * share)))
