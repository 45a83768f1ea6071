"""How many runs fit in a pack: estimated peak device memory of a pack, and the largest pack that fits.

GPU sweeps size packs from free device memory (`tune.default_pack_size`); the estimate is computed from the
config alone (parameter layout, dtype, optimizer state, activations), without loading a task.
"""

from __future__ import annotations

import math

import torch

from grokscan.config import MOD_OPS, PERM_TASK, RunConfig
from grokscan.models import Model

CPU_PACK_MAX = 16  # past ~32 members a CPU pack's buffers are mmapped and faulted in every step
EVAL_ELEMENTS = 2**25  # activations per eval chunk: bounds eval memory whatever the pack size
# pack_bytes checked against the peak RSS of 64-256-member CPU packs (glibc unmaps buffers over 32 MB, so
# RSS follows allocations there): estimate / measured 1.2 (default mlp), 1.1 (default transformer).
EVAL_PEAK = 0.75  # live share of the forward tensors in a no-grad eval (measured ~0.6)
ACT_COPIES = {"relu": (1, 2), "tanh": (1, 2), "quadratic": (2, 2), "gelu": (4, 5)}  # (saved, made) per unit


def _dims(cfg: RunConfig) -> tuple[int | None, int, int]:
    """(n_vocab or None for real-valued features, inputs per row, classes) as tasks.load gives them,
    without building the table: a driver sizing packs should not load MNIST."""
    if cfg.task in MOD_OPS or PERM_TASK.match(cfg.task):
        n = cfg.p if cfg.task in MOD_OPS else math.factorial(int(PERM_TASK.match(cfg.task).group(1)))
        return n, 2, n
    if cfg.task == "parity":
        return 2, cfg.n_bits, 2
    return None, 64 if cfg.task == "digits" else 784, 10


def eval_chunk(cfg: RunConfig, n_inputs: int, n_classes: int) -> int:
    """Members evaluated at once: about EVAL_ELEMENTS activations whatever the pack size."""
    widest = max(cfg.width * n_inputs, cfg.d_mlp or 0, n_classes)
    return max(1, EVAL_ELEMENTS // (cfg.n_rows * widest))


def _row_elements(cfg: RunConfig, n_vocab: int | None, n_inputs: int, n_classes: int) -> tuple[int, int]:
    """Elements per row: (training peak, forward total). Training peak = the tensors autograd saves plus the
    backward's transients at its peak: the logits' two gradients and two gradients of the widest layer."""
    w, c, (act_saved, act_made) = cfg.width, n_classes, ACT_COPIES[cfg.activation]
    if cfg.model == "mlp":
        inputs = n_inputs * w if n_vocab is not None else n_inputs  # embedded tokens or gathered features
        saved = inputs + cfg.depth * act_saved * w + c  # + log-probabilities
        return saved + 2 * c + 2 * max(inputs, w), inputs + cfg.depth * act_made * w + 2 * c
    t = n_inputs + 1  # tokens and "="
    saved, made, widest = c, 2 * t * w + 2 * c, t * w  # log-probabilities; embeddings, logits
    for layer in range(cfg.depth):
        tq = 1 if layer == cfg.depth - 1 else t  # the last layer computes the read-out position only
        # Saved: input, query (+ its slice), key, value, attention, z, residual, MLP hidden, last output.
        # Made: q, k, v and matmul's copies; scores, scaled, masked, softmax; z, copy, o, 2 residuals; MLP.
        saved += (t + (tq < t) * tq + tq + 2 * t + 2 * tq + (layer == cfg.depth - 1) * tq) * w
        saved += cfg.heads * tq * t + act_saved * tq * cfg.d_mlp
        made += 2 * (tq + 2 * t) * w + 4 * cfg.heads * tq * t + 5 * tq * w + act_made * tq * cfg.d_mlp
        widest = max(widest, tq * cfg.d_mlp)
    return saved + 2 * c + 2 * widest, made


def pack_bytes(cfg: RunConfig, members: int) -> int:
    """Estimated peak device bytes of a pack of `members` runs shaped like `cfg` (upper-side estimate).

    Per member: P parameters x dtype size for each of parameters, gradient, optimizer state (m and v; SGD:
    momentum), Grokfast's EMA if used and 2 P of update temporaries; row ids, labels and train mask. Plus
    the larger (they never coexist) of training activations (`_row_elements`' training peak x rows per step,
    per member) and eval activations (EVAL_PEAK x forward elements x all table rows, for one eval chunk of
    members only). Not counted: shared tensors (task table, hyperparameters), the CUDA context, allocator
    rounding and caching: `pack_size_for`'s headroom covers them.
    """
    n_vocab, n_inputs, n_classes = _dims(cfg)
    n_params = Model(cfg, n_vocab, n_inputs, n_classes).n_params
    copies = 4 + (cfg.optimizer != "sgd") + (cfg.grad_filter == "grokfast")
    size = torch.finfo(getattr(torch, cfg.dtype)).bits // 8
    train_row, forward_row = _row_elements(cfg, n_vocab, n_inputs, n_classes)
    fixed = n_params * copies * size + 8 * cfg.n_train + 9 * cfg.n_rows
    train_act = train_row * size * (cfg.batch_size or cfg.n_train) * members
    chunk = min(members, eval_chunk(cfg, n_inputs, n_classes))
    eval_act = EVAL_PEAK * forward_row * size * cfg.n_rows * chunk
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
