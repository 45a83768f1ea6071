"""Gradient filters applied before the optimizer rule: none, ⊥Grad (Prieto et al. 2025, "Grokking at the
edge of numerical stability"), Grokfast-EMA and Grokfast-MA (Lee et al. 2024, "Grokfast: accelerated
grokking by amplifying slow gradients")."""

from __future__ import annotations

import torch

from grokscan.config import RunConfig, check_range
from grokscan.engine.optim import Hyper, State
from grokscan.registry import GRAD_FILTERS, Entry, cfg_error


class GradFilter(Entry):
    """A gradient filter entry; `state_copies`: parameter-sized tensors of state (memory estimates)."""

    state_copies = 0

    def copies(self, cfg: RunConfig) -> int:
        """Parameter-sized tensors of state a run of `cfg` keeps."""
        return self.state_copies

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


class GrokfastMA(GradFilter):
    """Grokfast-MA: g <- g + lambda * mean of the last `grokfast_window` raw gradients (the current one
    included), applied once the window is full; before that g passes unchanged.

    As ironjr/grokfast grokfast.py:7-31 (`gradfilter_ma`, commit 93b2248) with its defaults window_size 100,
    lamb 5.0, filter_type "mean" and warmup True, which main.py:173 keeps (it passes window_size and lamb
    only). Its filter_type "sum" is the mean times the window, i.e. lamb * window here.
    """

    name = "grokfast_ma"
    fields = ("grokfast_window", "grokfast_ma_lamb")

    def validate(self, cfg: RunConfig) -> None:
        if cfg.grokfast_window is not None and not 1 <= cfg.grokfast_window <= 10_000:
            raise cfg_error("grokfast_window", cfg.grokfast_window, "must be in [1, 10000] gradients")

    def normalize(self, cfg: RunConfig) -> dict:
        window = 100 if cfg.grokfast_window is None else cfg.grokfast_window
        lamb = 5.0 if cfg.grokfast_ma_lamb is None else cfg.grokfast_ma_lamb
        return {"grokfast_window": window, "grokfast_ma_lamb": lamb}

    def copies(self, cfg: RunConfig) -> int:
        return cfg.grokfast_window or 100

    def init_state(self, flat: torch.Tensor) -> State:
        # The count stays on the host: reading it each step costs no device sync.
        return {"window": None, "count": torch.zeros(flat.shape[0], dtype=torch.long)}

    def apply(self, state: State, flat: torch.Tensor, grad: torch.Tensor, h: Hyper, segments) -> torch.Tensor:
        if state["window"] is None:  # [M, window, P]; a pack's members share the window size (pack_key)
            size = int(h.grokfast_window[0].item())
            state["window"] = grad.new_zeros(grad.shape[0], size, grad.shape[1])
        window, count = state["window"], state["count"]
        size = window.shape[1]
        window[:, int(count[0]) % size] = grad  # members step together: one slot for all
        count.add_(1)
        if int(count[0]) < size:
            return grad
        return grad + h.grokfast_ma_lamb * (window.sum(1) / size)


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


for _entry in (NoFilter(), PerpGrad(), Grokfast(), GrokfastMA()):
    GRAD_FILTERS.register(_entry)
