"""loss_dtype (Prieto et al. 2025's float64 loss on a float32 model), Grokfast-MA (Lee et al. 2024) and
Omnigrok's norm constraint (Liu et al. 2022): against direct constructions, identity and pack invariance."""

from __future__ import annotations

from collections import deque

import pytest
import torch
from test_pack_invariance import assert_identical, mixed
from torch.func import functional_call
from torch.testing import assert_close

from grokscan.config import RunConfig
from grokscan.engine.loop import train_runs
from grokscan.engine.losses import row_losses
from grokscan.engine.optim import Optimizer
from grokscan.engine.packing import pack_key
from grokscan.errors import UserError

TINY = dict(task="x+y", p=11, width=16, eval_every=10)


def test_float64_loss_of_float32_logits_sees_what_float32_rounds_to_zero():
    logits = torch.tensor([[[20.0, 0.0, -3.0]]])  # exp(-20) ~ 2e-9: below float32's epsilon, not float64's
    labels = torch.tensor([[0]])
    assert row_losses("ce", logits, labels).item() == 0.0
    want = torch.tensor([[20.0, 0.0, -3.0]], dtype=torch.float64).log_softmax(-1)[0, 0].neg()
    got = row_losses("ce", logits, labels, "float64")
    assert got.dtype == torch.float64 and got.item() == want.item() > 0
    w = torch.tensor([[[2.0, 0.0, -1.0]]], requires_grad=True)  # the gradient comes back in float32
    (grad,) = torch.autograd.grad(row_losses("stablemax", w * 20, labels, "float64").sum(), w)
    assert grad.dtype == torch.float32 and grad.abs().sum() > 0


def test_loss_dtype_identity_and_validation():
    assert RunConfig(loss_dtype="float32").run_id == RunConfig().run_id  # the model's dtype: the default run
    assert RunConfig(dtype="float64", loss_dtype="float64").loss_dtype is None
    assert RunConfig(loss_dtype="float64").run_id != RunConfig().run_id
    assert pack_key(RunConfig(loss_dtype="float64")) != pack_key(RunConfig())
    with pytest.raises(UserError, match="loss_dtype.*float16"):
        RunConfig(loss_dtype="float16")


def _reference_ma(module: torch.nn.Module, grads: dict | None, window: int, lamb: float) -> dict:
    """gradfilter_ma's rule on one nn.Module (ironjr/grokfast grokfast.py:7-31, mean, warmup): keep each
    parameter's last `window` raw gradients; once `window` are kept, add lamb times their mean."""
    grads = grads or {n: deque(maxlen=window) for n, _ in module.named_parameters()}
    for n, p in module.named_parameters():
        grads[n].append(p.grad.detach().clone())
        if len(grads[n]) == window:
            p.grad = p.grad + lamb * (sum(grads[n]) / window)
    return grads


@pytest.mark.parametrize("window,lamb", [(100, 5.0), (4, 2.5)])
def test_grokfast_ma_matches_gradfilter_ma_on_a_module(window: int, lamb: float):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)).double()
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randint(0, 2, (16,))
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()]).unsqueeze(0).clone()
    cfg = RunConfig(
        optimizer="sgd",
        lr=0.05,
        weight_decay=0.0,
        warmup=0,
        grad_filter="grokfast_ma",
        grokfast_window=window,
    )
    cfg = RunConfig(**{**cfg.to_dict(), "grokfast_ma_lamb": lamb})
    opt = Optimizer(cfg, [cfg], flat, [(0, flat.shape[1])])
    sgd, state = torch.optim.SGD(net.parameters(), lr=0.05), None

    def loss_of(params: dict) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(functional_call(net, params, (x,)), y)

    for _ in range(window + 8):  # before, at and past a full window
        sgd.zero_grad()
        loss_of(dict(net.named_parameters())).backward()
        state = _reference_ma(net, state, window, lamb)
        sgd.step()
        pieces = flat[0].split([s.numel() for s in shapes])
        params = {n: v.reshape(s).requires_grad_(True) for n, v, s in zip(names, pieces, shapes, strict=True)}
        grad = torch.autograd.grad(loss_of(params), list(params.values()))
        opt.update(flat, torch.cat([g.reshape(-1) for g in grad]).unsqueeze(0))
        want = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        assert_close(flat[0], want, rtol=1e-12, atol=1e-14)


def test_grokfast_ma_defaults_and_identity():
    cfg = RunConfig(grad_filter="grokfast_ma")
    assert (cfg.grokfast_window, cfg.grokfast_ma_lamb) == (100, 5.0)  # Lee et al.'s gradfilter_ma defaults
    assert RunConfig().grokfast_window is None and RunConfig(grad_filter="grokfast").grokfast_ma_lamb is None
    assert RunConfig(grad_filter="grokfast_ma", grokfast_window=100).run_id == cfg.run_id
    with pytest.raises(UserError, match="grokfast_window"):
        RunConfig(grad_filter="grokfast_ma", grokfast_window=0)


def test_norm_constraint_holds_the_init_norm_and_keeps_direction():
    cfg = RunConfig(optimizer="adamw", lr=0.1, weight_decay=0.0, warmup=0, norm_constraint="init")
    gen = torch.Generator().manual_seed(4)
    flat = 3 * torch.randn(2, 20, generator=gen, dtype=torch.float64)
    n0 = flat.norm(dim=1)
    opt, free = Optimizer(cfg, [cfg, cfg], flat, [(0, 20)]), flat.clone()
    plain = RunConfig(optimizer="adamw", lr=0.1, weight_decay=0.0, warmup=0)
    free_opt = Optimizer(plain, [plain, plain], free, [(0, 20)])
    grad = torch.randn(2, 20, generator=gen, dtype=torch.float64)
    opt.update(flat, grad)
    free_opt.update(free, grad)  # one step from the same point: the constrained step is its rescaling
    assert_close(flat.norm(dim=1), n0, rtol=1e-14, atol=0)
    assert_close(flat, free * (n0 / free.norm(dim=1)).unsqueeze(1), rtol=1e-14, atol=1e-15)
    assert RunConfig(norm_constraint="none").run_id == RunConfig().run_id
    with pytest.raises(UserError, match="norm_constraint"):
        RunConfig(norm_constraint="unit")


@pytest.mark.parametrize(
    "extra",
    [
        dict(loss_dtype="float64"),
        dict(grad_filter="grokfast_ma", grokfast_window=7),
        dict(norm_constraint="init", optimizer="sgd"),
    ],
    ids=["loss_dtype", "grokfast_ma", "norm_constraint"],
)
def test_new_options_are_pack_invariant(extra: dict):
    """Alone or in a pack of 5, bit-identical (float32 model on CPU, as the default runs)."""
    configs = mixed({**TINY, **extra}, n=5)
    packed = train_runs(configs)
    assert [r.pack_size for r in packed] == [5] * 5
    for cfg, r in zip(configs, packed, strict=True):
        assert_identical(train_runs([cfg])[0], r)
