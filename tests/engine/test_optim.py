"""Functional optimizers against torch.optim: update rules, warmup, and members of a pack updated as alone."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from grokscan.config import RunConfig
from grokscan.engine.optim import Hyper, Optimizer
from grokscan.errors import UserError

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


EMBED = (4, 10)  # columns of the "token embedding" in these tests' flat parameters


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_embedding_group_matches_torch_param_groups(name: str) -> None:
    """embed_lr / embed_weight_decay are a second torch.optim param group over the embedding's columns."""
    cfg = RunConfig(optimizer=name, lr=3e-2, weight_decay=0.5, warmup=0, momentum=0.9)
    cfg = RunConfig(**{**cfg.to_dict(), "embed_lr": 1e-2, "embed_weight_decay": 0.0})
    flat = _start(0).unsqueeze(0)
    opt = Optimizer(cfg, [cfg], flat, [(0, P)], embed=EMBED)
    a, b = EMBED
    start = _start(0)
    embed, rest = (
        torch.nn.Parameter(start[a:b].clone()),
        torch.nn.Parameter(torch.cat([start[:a], start[b:]])),
    )
    groups = [{"params": [embed], "lr": 1e-2, "weight_decay": 0.0}, {"params": [rest]}]
    kwargs = dict(lr=3e-2, weight_decay=0.5)
    if name == "sgd":
        ref = torch.optim.SGD(groups, momentum=0.9, **kwargs)
    else:
        ref = getattr(torch.optim, {"adamw": "AdamW", "adam": "Adam"}[name])(
            groups, betas=(0.9, 0.98), **kwargs
        )
    for _ in range(STEPS):
        opt.update(flat, _grad(flat[0]).unsqueeze(0))
        ref.zero_grad()
        _loss(torch.cat([rest[:a], embed, rest[a:]])).backward()
        ref.step()
    assert_close(flat[0], torch.cat([rest[:a], embed, rest[a:]]).detach(), **TIGHT)


def test_embedding_group_members_train_as_alone_also_when_joining() -> None:
    """A member without the fields trains bit-identically in a pack where another has them, also when
    that member joins later (the pack's lr then becomes per element)."""
    plain = RunConfig(lr=3e-2, weight_decay=0.5, warmup=3)
    grouped = RunConfig(**{**plain.to_dict(), "embed_lr": 1e-2, "embed_weight_decay": 0.0})
    assert grouped.run_id != plain.run_id
    alone = []
    for i, c in enumerate((plain, grouped)):
        flat = _start(i).unsqueeze(0)
        opt = Optimizer(c, [c], flat, [(0, P)], embed=EMBED)
        for _ in range(STEPS):
            opt.update(flat, _grad(flat[0]).unsqueeze(0))
        alone.append(flat[0])
    flat = _start(0).unsqueeze(0)
    opt = Optimizer(plain, [plain], flat, [(0, P)], embed=EMBED)
    for step in range(STEPS + 5):
        if step == 5:  # the grouped member joins, at its own step 0
            opt.add([grouped], _start(1).unsqueeze(0))
            flat = torch.cat([flat, _start(1).unsqueeze(0)])
        opt.update(flat, torch.stack([_grad(row) for row in flat]))
    assert opt.h.lr.shape == (2, P) and opt.t[:, 0].tolist() == [STEPS + 5, STEPS]
    assert torch.equal(flat[1], alone[1])
    opt_plain = Optimizer(plain, [plain], _start(0).unsqueeze(0), [(0, P)], embed=EMBED)
    assert opt_plain.h.lr.shape == (1, 1)  # no group: the usual column


def test_embedding_fields_identity_and_validation() -> None:
    base = RunConfig()
    same = RunConfig(embed_lr=base.lr, embed_weight_decay=base.weight_decay)
    assert same.run_id == base.run_id and same.embed_lr is None
    with pytest.raises(UserError, match="'embed_lr'.*token embedding"):
        RunConfig(task="digits", embed_lr=1e-3)
    with pytest.raises(UserError, match="'embed_weight_decay' = -1"):
        RunConfig(embed_weight_decay=-1.0)
