"""Functional optimizers against torch.optim, gradient filters against reference formulas, losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from grokscan.config import RunConfig
from grokscan.optim import Hyper, Optimizer, perp_grad, row_losses, stablemax_log_probs

P = 24
STEPS = 20
TIGHT = dict(rtol=1e-12, atol=1e-14)


def _loss(w: torch.Tensor) -> torch.Tensor:
    """A fixed non-quadratic objective, so gradients change direction and scale over the steps."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(P, P, generator=gen, dtype=torch.float64)
    b = torch.randn(P, generator=gen, dtype=torch.float64)
    return ((a @ w - b) ** 2).mean() + torch.sin(3 * w).sum() + 0.1 * (w**4).sum()


def _grad(w: torch.Tensor) -> torch.Tensor:
    w = w.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_loss(w), w)
    return g


def _start(seed: int) -> torch.Tensor:
    return torch.randn(P, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _run_ours(configs: list[RunConfig], grad_filter: str = "none") -> list[list[torch.Tensor]]:
    """Trajectories of each member of one pack; member i starts at _start(i)."""
    flat = torch.stack([_start(i) for i in range(len(configs))])
    hyper = Hyper.from_configs(configs, torch.float64, "cpu")
    opt = Optimizer(configs[0].optimizer, grad_filter, hyper, flat, [(0, P)])
    out: list[list[torch.Tensor]] = [[] for _ in configs]
    for _ in range(STEPS):
        grad = torch.stack([_grad(row) for row in flat])
        opt.update(flat, grad)
        for i, row in enumerate(flat):
            out[i].append(row.clone())
    return out


def _run_torch(make_opt, seed: int, lr_lambda=None) -> list[torch.Tensor]:
    param = torch.nn.Parameter(_start(seed))
    opt = make_opt([param])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda) if lr_lambda else None
    out = []
    for _ in range(STEPS):
        opt.zero_grad()
        _loss(param).backward()
        opt.step()
        if sched:
            sched.step()
        out.append(param.detach().clone())
    return out


ADAM_SETTINGS = [
    dict(lr=1e-2, weight_decay=0.5, beta1=0.9, beta2=0.98, eps=1e-8),
    dict(lr=3e-2, weight_decay=0.0, beta1=0.8, beta2=0.999, eps=1e-6),
    dict(lr=5e-3, weight_decay=2.0, beta1=0.95, beta2=0.9, eps=1e-10),
]


@pytest.mark.parametrize("kind", ["adamw", "adam"])
def test_adam_family_matches_torch(kind: str) -> None:
    """A pack of three members with different hyperparameters; each matches its own torch optimizer."""
    configs = [RunConfig(optimizer=kind, warmup=0, **s) for s in ADAM_SETTINGS]
    ours = _run_ours(configs)
    torch_cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    for i, s in enumerate(ADAM_SETTINGS):
        ref = _run_torch(
            lambda params, s=s: torch_cls(
                params,
                lr=s["lr"],
                betas=(s["beta1"], s["beta2"]),
                eps=s["eps"],
                weight_decay=s["weight_decay"],
                foreach=False,
            ),
            i,
        )
        assert not torch.equal(ref[-1], _start(i))
        for mine, theirs in zip(ours[i], ref, strict=True):
            assert_close(mine, theirs, **TIGHT)


@pytest.mark.parametrize("kind", ["adamw", "adam", "sgd"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_pack_of_64_updates_each_member_as_alone(kind: str, dtype: torch.dtype) -> None:
    """Bitwise: a member's update does not depend on how many members share the pack (CPU kernels
    vectorize a pack's hyperparameter columns but not a lone member's)."""
    settings = [
        dict(lr=lr, weight_decay=wd, beta1=b1, beta2=b2, momentum=b1, warmup=w)
        for lr, wd, b1, b2, w in zip(
            [1e-2, 3e-3, 2e-2, 5e-3] * 16,
            [0.0, 1.0, 0.3, 2.0] * 16,
            [0.9, 0.8, 0.95, 0.5] * 16,
            [0.98, 0.999, 0.9, 0.95] * 16,
            [0, 3, 10, 1] * 16,
            strict=True,
        )
    ]
    configs = [RunConfig(optimizer=kind, **s) for s in settings]
    gen = torch.Generator().manual_seed(7)
    start = torch.randn(64, 37, generator=gen, dtype=dtype)
    grads = [torch.randn(64, 37, generator=gen, dtype=dtype) for _ in range(45)]
    pack = start.clone()
    opt = Optimizer(kind, "none", Hyper.from_configs(configs, dtype, "cpu"), pack, [(0, 37)])
    for g in grads:
        opt.update(pack, g)
    for i in (0, 1, 5, 14, 31, 63):
        alone = start[i : i + 1].clone()
        opt1 = Optimizer(kind, "none", Hyper.from_configs(configs[i : i + 1], dtype, "cpu"), alone, [(0, 37)])
        for g in grads:
            opt1.update(alone, g[i : i + 1])
        assert torch.equal(alone[0], pack[i]), i


def test_adamw_and_adam_differ_with_weight_decay() -> None:
    s = ADAM_SETTINGS[0]
    assert not torch.allclose(
        _run_ours([RunConfig(optimizer="adamw", warmup=0, **s)])[0][-1],
        _run_ours([RunConfig(optimizer="adam", warmup=0, **s)])[0][-1],
    )


SGD_SETTINGS = [
    dict(lr=1e-2, momentum=0.9, weight_decay=0.1),
    dict(lr=3e-2, momentum=0.0, weight_decay=0.0),
    dict(lr=5e-3, momentum=0.5, weight_decay=1.0),
]


def test_sgd_matches_torch() -> None:
    configs = [RunConfig(optimizer="sgd", warmup=0, **s) for s in SGD_SETTINGS]
    ours = _run_ours(configs)
    for i, s in enumerate(SGD_SETTINGS):
        ref = _run_torch(lambda params, s=s: torch.optim.SGD(params, **s, foreach=False), i)
        for mine, theirs in zip(ours[i], ref, strict=True):
            assert_close(mine, theirs, **TIGHT)


@pytest.mark.parametrize("warmup", [1, 5, 12])
def test_warmup_matches_lambda_lr(warmup: int) -> None:
    """Update t (1-based) uses lr * min(1, t / warmup); LambdaLR's epoch e drives update e + 1."""
    s = ADAM_SETTINGS[0]
    ours = _run_ours([RunConfig(optimizer="adamw", warmup=warmup, **s)])[0]
    ref = _run_torch(
        lambda params: torch.optim.AdamW(
            params,
            lr=s["lr"],
            betas=(s["beta1"], s["beta2"]),
            eps=s["eps"],
            weight_decay=s["weight_decay"],
            foreach=False,
        ),
        0,
        lr_lambda=lambda e: min(1.0, (e + 1) / warmup),
    )
    for mine, theirs in zip(ours, ref, strict=True):
        assert_close(mine, theirs, **TIGHT)
    if warmup > 1:  # the schedule matters: without warmup the first update is different
        no_warmup = _run_ours([RunConfig(optimizer="adamw", warmup=0, **s)])[0]
        assert not torch.allclose(ours[0], no_warmup[0])


def test_warmup_per_member() -> None:
    """Members of one pack can have different warmups; each matches the same member trained alone."""
    s = ADAM_SETTINGS[1]
    configs = [RunConfig(optimizer="adam", warmup=w, **s) for w in (0, 7)]
    pack = _run_ours(configs)
    alone_0 = _run_ours(configs[:1])[0]
    alone_7 = _run_ours([configs[1], configs[1]])[1]  # member 1 of a pack starts at _start(1)
    for step in range(STEPS):
        assert torch.equal(pack[0][step], alone_0[step])
        assert torch.equal(pack[1][step], alone_7[step])
    assert not torch.allclose(pack[1][0] - _start(1), alone_0[0] - _start(0))
    assert Hyper.from_configs(configs, torch.float64, "cpu").warmup.tolist() == [[0.0], [7.0]]


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
    opt = Optimizer("sgd", "perp", Hyper.from_configs([cfg, cfg], torch.float64, "cpu"), flat, SEGMENTS)
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
    opt = Optimizer("sgd", "grokfast", Hyper.from_configs(configs, torch.float64, "cpu"), flat, [(0, 9)])
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


def _stablemax_reference(logits: list[float]) -> list[float]:
    s = [x + 1 if x >= 0 else 1 / (1 - x) for x in logits]
    total = sum(s)
    return [math.log(v / total) for v in s]


def test_stablemax_matches_formula() -> None:
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 5, 7, generator=gen, dtype=torch.float64) * 4
    logits[0, 0, :3] = torch.tensor([0.0, -0.0, 50.0], dtype=torch.float64)
    got = stablemax_log_probs(logits)
    want = torch.tensor(
        [[_stablemax_reference(row) for row in m] for m in logits.tolist()], dtype=torch.float64
    )
    assert_close(got, want, rtol=1e-13, atol=1e-13)
    assert_close(got.exp().sum(-1), torch.ones(2, 5, dtype=torch.float64), rtol=1e-13, atol=0)


@pytest.mark.parametrize("dtype,scale", [(torch.float32, 1e6), (torch.float32, 1e12), (torch.float64, 1e100)])
def test_stablemax_gradient_finite_for_large_logits(dtype: torch.dtype, scale: float) -> None:
    logits = (torch.tensor([[[1.0, -1.0, 0.5, -0.25, 0.0]]], dtype=dtype) * scale).requires_grad_(True)
    for label in range(5):
        loss = row_losses("stablemax", logits, torch.tensor([[label]])).sum()
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(grad).all(), (label, grad)
    # softmax saturates here (loss of the top class is exactly 0); stablemax still has a gradient
    top = row_losses("stablemax", logits, torch.tensor([[0]])).sum()
    assert torch.autograd.grad(top, logits)[0].abs().sum() > 0


def test_row_losses_ce_equals_cross_entropy() -> None:
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 8, 6, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 6, (3, 8), generator=gen)
    got = row_losses("ce", logits, labels)
    want = F.cross_entropy(logits.reshape(-1, 6), labels.reshape(-1), reduction="none").view(3, 8)
    assert got.shape == (3, 8)
    assert_close(got, want, rtol=1e-14, atol=1e-14)


def test_row_losses_mse_equals_mse_loss_on_one_hot() -> None:
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(3, 8, 6, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 6, (3, 8), generator=gen)
    one_hot = torch.zeros(3, 8, 6, dtype=torch.float64)
    for m in range(3):
        for b in range(8):
            one_hot[m, b, labels[m, b]] = 1.0
    want = torch.nn.MSELoss(reduction="none")(logits, one_hot).mean(-1)
    assert_close(row_losses("mse", logits, labels), want, rtol=1e-14, atol=1e-14)
    assert_close(row_losses("mse", logits, labels).mean(), torch.nn.MSELoss()(logits, one_hot))


def test_row_losses_stablemax_is_negative_log_prob() -> None:
    logits = torch.tensor([[[2.0, -1.0, 0.0]]], dtype=torch.float64)
    got = row_losses("stablemax", logits, torch.tensor([[2]]))
    assert_close(got, torch.tensor([[-math.log(1 / (3 + 0.5 + 1))]], dtype=torch.float64))
