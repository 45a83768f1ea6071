"""Grokking Tickets (Minegishi et al., "Bridging Lottery Ticket and Grokking: Understanding Grokking from
Inner Structure of Networks"): runs derived from a stored run, its `parent`.

`ticket` names how a derived run starts (registry TICKETS; "none": an ordinary run):
- magnitude: prune the parent's final weights by magnitude at `prune_rate`, apply that mask to the
  parent's initial weights and train with the mask held fixed (the ticket);
- random: a random mask with the magnitude mask's per-layer sparsity (control);
- dense_l1 / dense_l2: no mask, the initial weights rescaled so that the prunable weights' total L1 / L2
  norm equals the ticket's (control: is it the ticket's smaller norm that helps?).

Prunable weights are those with two or more dimensions (embeddings, weight matrices); biases and
LayerNorm gains are kept, as in the reference code, where only weight matrices carry a `weight_mask`.
Magnitude pruning follows gouki510/Grokking-Tickets pruner.py lines 13-40: with N scores, the k =
int(prune_rate * N) smallest mark a threshold (kthvalue) and every score <= threshold is pruned; `global`
pools every prunable weight (config/config_pruning.py line 56, their default), `layer` thresholds each
tensor (their "local"). Their `sparsity` is the fraction kept: k = int((1 - sparsity) * N). Their
rewinding reloads the init (prune.py lines 79-85); here the derived run's own init is its parent's, drawn
from the same seed and alpha on the same model (`grokscan.sweep.parents` checks this before a sweep).
The dense controls follow prune.py lines 190-203 (`same_norm_init`, `set_weight_ratio`), which multiply
every weight matrix by the ratio of masked to full norm; the reference sums per-layer norms, here the
norm is taken over all prunable weights together.

Holding the mask: the pack zeroes a ticket's masked gradient entries before each update, so no optimizer
state builds up there, and multiplies its parameters by the mask after (`Pack.train_step`): masked
weights are exactly 0 after every update, weight decay and Adam included.

The parents' final weights come from `parent_weights(load)`, set around training by a sweep's trial
(`grokscan.load_weights` on the sweep's storage).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar

import numpy as np
import torch

from grokscan.config import RunConfig
from grokscan.engine.models import Model
from grokscan.errors import UserError
from grokscan.registry import TICKETS, Entry, cfg_error

FIELDS = ("parent", "prune_rate", "prune_scope")
SCOPES = ("global", "layer")
MASKED = ("magnitude", "random")
RANDOM_STREAM = 3_000_017  # offsets the random mask's generator from the init generator of the same seed

LoadWeights = Callable[[str], dict[str, np.ndarray]]
_LOAD: ContextVar[LoadWeights | None] = ContextVar("grokscan_parent_weights", default=None)


class NoTicket(Entry):
    name = "none"


class Ticket(Entry):
    """A derived run's start (module doc)."""

    fields = FIELDS

    def __init__(self, name: str) -> None:
        self.name = name

    def validate(self, cfg: RunConfig) -> None:
        if not isinstance(cfg.parent, str) or not re.fullmatch(r"[0-9a-f]{16}", cfg.parent):
            raise cfg_error("parent", cfg.parent, "a ticket needs its parent's run id (16 hex digits)")
        if cfg.prune_rate is None or not 0 < cfg.prune_rate < 1:
            raise cfg_error("prune_rate", cfg.prune_rate, "a ticket needs a fraction in (0, 1) to prune")
        if cfg.prune_scope not in (None, *SCOPES):
            raise cfg_error("prune_scope", cfg.prune_scope, "one of 'global', 'layer'")

    def normalize(self, cfg: RunConfig) -> dict:
        return {"prune_scope": cfg.prune_scope or "global"}


TICKETS.register(NoTicket())
for _name in (*MASKED, "dense_l1", "dense_l2"):
    TICKETS.register(Ticket(_name))


@contextlib.contextmanager
def parent_weights(load: LoadWeights) -> Iterator[None]:
    """Packs built inside this block read derived runs' parents with `load(run_id)` (final weights)."""
    token = _LOAD.set(load)
    try:
        yield
    finally:
        _LOAD.reset(token)


def prunable(weights: dict[str, torch.Tensor]) -> list[str]:
    """Names of the prunable weights: two or more dimensions."""
    return [name for name, w in weights.items() if w.dim() >= 2]


def magnitude_keep(final: dict[str, torch.Tensor], rate: float, scope: str) -> dict[str, torch.Tensor]:
    """Boolean keep-masks of `final`'s tensors (module doc: the reference's threshold rule)."""
    groups = [list(final)] if scope == "global" else [[name] for name in final]
    keep = {}
    for names in groups:
        scores = torch.cat([final[n].abs().reshape(-1) for n in names])
        k = int(rate * scores.numel())
        threshold = torch.kthvalue(scores, k).values if k >= 1 else scores.min() - 1
        keep.update({n: final[n].abs() > threshold for n in names})
    return keep


def random_keep(keep: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Masks keeping as many entries of each tensor as `keep` does, at random positions from `seed`."""
    gen = torch.Generator().manual_seed(seed + RANDOM_STREAM)
    out = {}
    for name, mask in keep.items():
        chosen = torch.randperm(mask.numel(), generator=gen)[: int(mask.sum())]
        flat = torch.zeros(mask.numel(), dtype=torch.bool)
        flat[chosen] = True
        out[name] = flat.view(mask.shape).to(mask.device)
    return out


def derived_start(configs: Sequence[RunConfig], model: Model, flat: torch.Tensor) -> torch.Tensor | None:
    """Start a pack's derived members in place (flat [M, P] holds their init) and return the pack's keep
    mask [M, P] (1: trained, 0: held at 0), or None when no member is masked."""
    if all(c.ticket == "none" for c in configs):
        return None
    load = _LOAD.get()
    if load is None:
        raise UserError(
            "runs derived from a stored run need its weights: train them in a sweep (or inside "
            "grokscan.engine.tickets.parent_weights)"
        )
    keep = torch.ones_like(flat)
    parents: dict[str, dict[str, torch.Tensor]] = {}
    for i, cfg in enumerate(configs):
        if cfg.ticket == "none":
            continue
        if cfg.parent not in parents:
            parents[cfg.parent] = _parent(load, cfg.parent, model, flat)
        init, keep_i = model.views(flat[i : i + 1]), model.views(keep[i : i + 1])
        names = prunable({n: w[0] for n, w in init.items()})
        final = {n: parents[cfg.parent][n] for n in names}
        mask = magnitude_keep(final, cfg.prune_rate, cfg.prune_scope)
        if cfg.ticket == "random":
            mask = random_keep(mask, cfg.seed)
        if cfg.ticket in MASKED:
            for n in names:
                keep_i[n][0] = mask[n].to(flat.dtype)
        else:
            q = 1 if cfg.ticket == "dense_l1" else 2
            dense = torch.cat([init[n][0].reshape(-1) for n in names])
            ticket = torch.cat([(init[n][0] * mask[n]).reshape(-1) for n in names])
            ratio = ticket.norm(q) / dense.norm(q)
            for n in names:
                init[n].mul_(ratio)
    flat.mul_(keep)
    return keep if any(c.ticket in MASKED for c in configs) else None


def _parent(load: LoadWeights, run_id: str, model: Model, like: torch.Tensor) -> dict[str, torch.Tensor]:
    weights = load(run_id)
    for name, (shape, _) in model.spec.items():
        if name not in weights or tuple(weights[name].shape) != tuple(shape):
            got = tuple(weights[name].shape) if name in weights else "none"
            raise UserError(
                f"parent run {run_id}: stored weight {name!r} has shape {got}, the derived run's model needs "
                f"{tuple(shape)}: a ticket keeps its parent's task and model"
            )
    return {n: torch.as_tensor(w).to(like.device, like.dtype) for n, w in weights.items()}
