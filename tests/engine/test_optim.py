"""Functional optimizers against torch.optim: update rules, warmup, and members of a pack updated as alone."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from grokscan.config import RunConfig
from grokscan.engine.optim import Hyper, Optimizer

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


def _run_ours(configs: list[RunConfig]) -> list[list[torch.Tensor]]:
    """Trajectories of each member of one pack; member i starts at _start(i)."""
    flat = torch.stack([_start(i) for i in range(len(configs))])
    opt = Optimizer(configs[0], configs, flat, [(0, P)])
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
    opt = Optimizer(configs[0], configs, pack, [(0, 37)])
    for g in grads:
        opt.update(pack, g)
    for i in (0, 1, 5, 14, 31, 63):
        alone = start[i : i + 1].clone()
        opt1 = Optimizer(configs[i], configs[i : i + 1], alone, [(0, 37)])
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
    assert Hyper.from_configs(configs, ["warmup"], torch.float64, "cpu").warmup.tolist() == [[0.0], [7.0]]
