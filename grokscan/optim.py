"""Functional optimizers, gradient filters and losses over a pack's flat parameters [M, P].

Every hyperparameter is a per-member column [M, 1], so members of one pack may use different lr, weight
decay, betas, warmup. Update rules match torch.optim (AdamW: decoupled decay, Loshchilov & Hutter; Adam and
SGD: L2 added to the gradient), so a one-member pack reproduces torch.optim within float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from grokscan.config import RunConfig


@dataclass
class Hyper:
    """Per-member hyperparameter columns [M, 1] (0 where a field is None for that optimizer)."""

    lr: torch.Tensor
    weight_decay: torch.Tensor
    beta1: torch.Tensor
    beta2: torch.Tensor
    eps: torch.Tensor
    momentum: torch.Tensor
    warmup: torch.Tensor
    grokfast_alpha: torch.Tensor
    grokfast_lamb: torch.Tensor

    @classmethod
    def from_configs(cls, configs: list[RunConfig], dtype: torch.dtype, device: str) -> Hyper:
        def column(name: str) -> torch.Tensor:
            values = [float(getattr(c, name) or 0.0) for c in configs]
            return torch.tensor(values, dtype=dtype, device=device).unsqueeze(1)

        return cls(*(column(name) for name in cls.__dataclass_fields__))

    def select(self, keep: torch.Tensor) -> Hyper:
        return Hyper(*(getattr(self, name)[keep] for name in self.__dataclass_fields__))


class Optimizer:
    """AdamW / Adam / SGD over flat parameters, with optional ⊥Grad or Grokfast gradient filtering."""

    def __init__(self, kind: str, grad_filter: str, hyper: Hyper, flat: torch.Tensor, segments) -> None:
        self.kind, self.grad_filter, self.h, self.segments = kind, grad_filter, hyper, segments
        self.step = 0
        self.m = torch.zeros_like(flat)
        self.v = torch.zeros_like(flat) if kind != "sgd" else None
        self.ema: torch.Tensor | None = None  # Grokfast EMA, initialized with the first gradient
        # beta1**t, beta2**t as running products: a vectorized pow over a pack's [M, 1] column rounds
        # differently from the scalar pow a lone member gets, which breaks pack invariance.
        self.beta1_t, self.beta2_t = torch.ones_like(hyper.beta1), torch.ones_like(hyper.beta2)

    def select(self, keep: torch.Tensor) -> None:
        self.h = self.h.select(keep)
        self.m = self.m[keep]
        self.v = self.v[keep] if self.v is not None else None
        self.ema = self.ema[keep] if self.ema is not None else None
        self.beta1_t, self.beta2_t = self.beta1_t[keep], self.beta2_t[keep]

    def filter(self, flat: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        if self.grad_filter == "perp":
            return perp_grad(flat, grad, self.segments)
        if self.grad_filter == "grokfast":
            # Lee et al. 2024, Grokfast-EMA: ema <- a * ema + (1 - a) * g;  g <- g + lambda * ema.
            if self.ema is None:
                self.ema = grad.clone()
            else:
                self.ema.mul_(self.h.grokfast_alpha).add_(grad * (1 - self.h.grokfast_alpha))
            return grad + self.h.grokfast_lamb * self.ema
        return grad

    @torch.no_grad()
    def update(self, flat: torch.Tensor, grad: torch.Tensor) -> None:
        """One step in place. Warmup: lr * min(1, t / warmup) at update t (1-based)."""
        self.step += 1
        h, t = self.h, self.step
        lr = h.lr * torch.clamp(t / h.warmup.clamp(min=1), max=1.0)
        grad = self.filter(flat, grad)
        if self.kind == "sgd":
            grad = grad + h.weight_decay * flat
            self.m = grad.clone() if t == 1 else self.m.mul_(h.momentum).add_(grad)
            flat.sub_(lr * self.m)
            return
        if self.kind == "adamw":
            flat.mul_(1 - lr * h.weight_decay)
        else:
            grad = grad + h.weight_decay * flat
        self.m.lerp_(grad, 1 - h.beta1)
        self.v.mul_(h.beta2).add_(grad * grad * (1 - h.beta2))
        self.beta1_t, self.beta2_t = self.beta1_t * h.beta1, self.beta2_t * h.beta2
        step_size = lr / (1 - self.beta1_t)
        denom = (self.v.sqrt() / (1 - self.beta2_t).sqrt()).add_(h.eps)
        flat.sub_(step_size * (self.m / denom))


def perp_grad(flat: torch.Tensor, grad: torch.Tensor, segments: list[tuple[int, int]]) -> torch.Tensor:
    """⊥Grad (Prieto et al. 2025): per weight tensor, drop the gradient's component along the weight and
    rescale to the original gradient norm, so updates cannot simply grow the weights' scale."""
    out = torch.empty_like(grad)
    tiny = torch.finfo(grad.dtype).tiny
    for a, b in segments:
        w, g = flat[:, a:b], grad[:, a:b]
        coef = (w * g).sum(1, keepdim=True) / ((w * w).sum(1, keepdim=True) + tiny)
        g_perp = g - coef * w
        scale = g.norm(dim=1, keepdim=True) / (g_perp.norm(dim=1, keepdim=True) + tiny)
        out[:, a:b] = g_perp * scale
    return out


def stablemax_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log StableMax (Prieto et al. 2025): s(x) = x + 1 for x >= 0, 1 / (1 - x) for x < 0; p = s / sum(s)."""
    s = torch.where(logits >= 0, logits + 1, 1 / (1 - logits.clamp(max=0)))
    return torch.log(s / s.sum(-1, keepdim=True))


def row_losses(kind: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example loss [M, B] for logits [M, B, C] and labels [M, B]."""
    if kind == "mse":  # squared error on one-hot targets, averaged over classes (nn.MSELoss)
        target = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
        return (logits - target).square().mean(-1)
    log_probs = logits.log_softmax(-1) if kind == "ce" else stablemax_log_probs(logits)
    return -log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
