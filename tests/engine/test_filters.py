"""Gradient filters against reference formulas: ⊥Grad and Grokfast-EMA, applied by the pack's update."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from grokscan.config import RunConfig
from grokscan.engine.filters import perp_grad
from grokscan.engine.optim import Optimizer

SEGMENTS = [(0, 5), (5, 17), (17, 30), (30, 31)]  # as Model.offsets: weight tensors in one flat row


def test_perp_grad_orthogonal_and_norm_preserving() -> None:
    gen = torch.Generator().manual_seed(1)
    flat = torch.randn(3, 31, generator=gen, dtype=torch.float64)
    grad = torch.randn(3, 31, generator=gen, dtype=torch.float64) + 0.5 * flat  # has a radial component
    out = perp_grad(flat, grad, SEGMENTS)
    for a, b in SEGMENTS:
        w, g, o = flat[:, a:b], grad[:, a:b], out[:, a:b]
        if b - a == 1:
            continue  # a single weight can only move radially: no orthogonal direction exists
        assert_close((w * o).sum(1), torch.zeros(3, dtype=torch.float64), rtol=0, atol=1e-12)
        assert not torch.allclose((w * g).sum(1), torch.zeros(3, dtype=torch.float64))
        assert_close(o.norm(dim=1), g.norm(dim=1), rtol=1e-12, atol=0)
        assert not torch.allclose(o, g)
    assert torch.isfinite(out).all()


def test_perp_grad_zero_weight_passes_gradient_through() -> None:
    flat = torch.zeros(2, 6, dtype=torch.float64)
    grad = torch.arange(12, dtype=torch.float64).view(2, 6)
    assert_close(perp_grad(flat, grad, [(0, 6)]), grad, rtol=1e-15, atol=0)


def test_perp_filter_is_applied_by_update() -> None:
    cfg = RunConfig(optimizer="sgd", lr=1.0, momentum=0.0, weight_decay=0.0, warmup=0, grad_filter="perp")
    gen = torch.Generator().manual_seed(2)
    flat = torch.randn(2, 31, generator=gen, dtype=torch.float64)
    grad = torch.randn(2, 31, generator=gen, dtype=torch.float64)
    before = flat.clone()
    opt = Optimizer(cfg, [cfg, cfg], flat, SEGMENTS)
    opt.update(flat, grad)
    assert_close(before - flat, perp_grad(before, grad, SEGMENTS), rtol=1e-12, atol=1e-14)


def test_grokfast_matches_reference_loop() -> None:
    """Lee et al. 2024 Grokfast-EMA: ema_1 = g_1; ema_t = a ema_{t-1} + (1 - a) g_t; g_t + lamb ema_t."""
    settings = [(0.98, 2.0), (0.8, 0.5)]
    configs = [
        RunConfig(
            optimizer="sgd",
            lr=1.0,
            momentum=0.0,
            weight_decay=0.0,
            warmup=0,
            grad_filter="grokfast",
            grokfast_alpha=a,
            grokfast_lamb=lamb,
        )
        for a, lamb in settings
    ]
    gen = torch.Generator().manual_seed(3)
    grads = [torch.randn(2, 9, generator=gen, dtype=torch.float64) for _ in range(12)]
    flat = torch.zeros(2, 9, dtype=torch.float64)
    opt = Optimizer(configs[0], configs, flat, [(0, 9)])
    ema: list[list[float] | None] = [None, None]
    for g in grads:
        before = flat.clone()
        opt.update(flat, g)
        for i, (a, lamb) in enumerate(settings):
            row = g[i].tolist()
            ema[i] = (
                row if ema[i] is None else [a * e + (1 - a) * v for e, v in zip(ema[i], row, strict=True)]
            )
            want = [v + lamb * e for v, e in zip(row, ema[i], strict=True)]
            # SGD with lr 1, no momentum, no decay: the update is exactly the filtered gradient
            assert_close((before - flat)[i], torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-14)
