"""Gradient filters applied before the optimizer rule: none, ⊥Grad (Prieto et al. 2025, "Grokking at the
edge of numerical stability") and Grokfast-EMA (Lee et al. 2024, "Grokfast: accelerated grokking by
amplifying slow gradients")."""

from __future__ import annotations

import torch

from grokscan.config import RunConfig, check_range
from grokscan.engine.optim import Hyper, State
from grokscan.registry import GRAD_FILTERS, Entry


class GradFilter(Entry):
    """A gradient filter entry; `state_copies`: parameter-sized tensors of state (memory estimates)."""

    state_copies = 0

    def init_state(self, flat: torch.Tensor) -> State:
        return {}

    def apply(self, state: State, flat: torch.Tensor, grad: torch.Tensor, h: Hyper, segments) -> torch.Tensor:
        return grad


class NoFilter(GradFilter):
    name = "none"


class PerpGrad(GradFilter):
    """Per weight tensor, drop the gradient's component along the weight and rescale to the original
    gradient norm, so updates cannot simply grow the weights' scale."""

    name = "perp"

    def apply(self, state: State, flat: torch.Tensor, grad: torch.Tensor, h: Hyper, segments) -> torch.Tensor:
        return perp_grad(flat, grad, segments)


class Grokfast(GradFilter):
    """Grokfast-EMA: ema <- a * ema + (1 - a) * g, from the first gradient on; g <- g + lambda * ema."""

    name = "grokfast"
    fields = ("grokfast_alpha", "grokfast_lamb")
    state_copies = 1

    def validate(self, cfg: RunConfig) -> None:
        check_range(cfg, "grokfast_alpha", 0, 1)

    def init_state(self, flat: torch.Tensor) -> State:
        return {"ema": None}

    def apply(self, state: State, flat: torch.Tensor, grad: torch.Tensor, h: Hyper, segments) -> torch.Tensor:
        if state["ema"] is None:
            state["ema"] = grad.clone()
        else:
            state["ema"].mul_(h.grokfast_alpha).add_(grad * (1 - h.grokfast_alpha))
        return grad + h.grokfast_lamb * state["ema"]


def perp_grad(flat: torch.Tensor, grad: torch.Tensor, segments: list[tuple[int, int]]) -> torch.Tensor:
    """⊥Grad over the weight tensors at `segments` (column ranges of the flat parameters)."""
    out = torch.empty_like(grad)
    tiny = torch.finfo(grad.dtype).tiny
    for a, b in segments:
        w, g = flat[:, a:b], grad[:, a:b]
        coef = (w * g).sum(1, keepdim=True) / ((w * w).sum(1, keepdim=True) + tiny)
        g_perp = g - coef * w
        scale = g.norm(dim=1, keepdim=True) / (g_perp.norm(dim=1, keepdim=True) + tiny)
        out[:, a:b] = g_perp * scale
    return out


for _entry in (NoFilter(), PerpGrad(), Grokfast()):
    GRAD_FILTERS.register(_entry)
