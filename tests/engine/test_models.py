"""Model layout, init and the member dimension: shapes, determinism, alpha, independence of members."""

from __future__ import annotations

import pytest
import torch

from grokscan.config import RunConfig
from grokscan.engine.models import Model
from grokscan.engine.pack import Pack
from grokscan.registry import ACTIVATIONS, TASKS
from grokscan.tasks import Dims

M = 3
TASK_FIELDS = {
    "mod": dict(task="x-y", p=7),
    "s3": dict(task="s3"),
    "parity": dict(task="parity", n_bits=6, k_bits=2, n_samples=None),
    "digits": dict(task="digits"),
}
CASES = [
    (model, family)
    for model in ("mlp", "transformer")
    for family in TASK_FIELDS
    if not (model == "transformer" and family == "digits")
]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/engine/conftest.py


def _setup(model: str, family: str, dtype=torch.float64, **overrides):
    cfg = RunConfig(
        **{"model": model, "width": 8, "heads": 2, "d_mlp": 12, **TASK_FIELDS[family], **overrides}
    )
    data = TASKS.get(cfg.task).table(cfg)
    net = Model(cfg, TASKS.get(cfg.task).dims(cfg))
    x = data.x[:10] if data.n_vocab is not None else data.x[:10].to(dtype)
    return cfg, data, net, x


def _pack_params(net: Model, dtype=torch.float64) -> torch.Tensor:
    return torch.stack([net.init_member(seed, 1.0 + 0.5 * seed, dtype) for seed in range(M)])


@pytest.mark.parametrize("model,family", CASES)
@pytest.mark.parametrize("depth", [1, 2])
def test_forward_shape(model: str, family: str, depth: int) -> None:
    _, data, net, x = _setup(model, family, depth=depth)
    flat = _pack_params(net)
    assert flat.shape == (M, net.n_params)
    logits = net.forward(flat, x.expand(M, *x.shape))
    assert logits.shape == (M, len(x), data.n_classes)
    assert torch.isfinite(logits).all()
    # members with different params give different logits
    assert not torch.equal(logits[0], logits[1])


def test_views_cover_every_parameter_once() -> None:
    _, _, net, _ = _setup("transformer", "mod", depth=2)
    flat = torch.arange(2 * net.n_params, dtype=torch.float64).view(2, -1)
    seen = torch.cat([v.reshape(2, -1) for v in net.views(flat).values()], 1)
    assert torch.equal(seen.sort(1).values, flat)
    views = net.views(flat)
    views["unembed"][1, 0, 0] = -1.0  # views share storage with the flat row
    assert (flat == -1.0).sum() == 1 and flat[1].min() == -1.0


@pytest.mark.parametrize("model,family", [("mlp", "mod"), ("transformer", "mod"), ("mlp", "digits")])
def test_init_member_deterministic(model: str, family: str) -> None:
    _, _, net, _ = _setup(model, family)
    a = net.init_member(5, 1.0, torch.float64)
    assert torch.equal(a, net.init_member(5, 1.0, torch.float64))
    assert not torch.equal(a, net.init_member(6, 1.0, torch.float64))
    assert a.shape == (net.n_params,) and a.dtype == torch.float64
    assert net.init_member(5, 1.0, torch.float32).dtype == torch.float32


def test_init_member_independent_of_pack() -> None:
    base = dict(task="x+y", p=7, width=8, dtype="float64")
    configs = [RunConfig(**base, seed=s, alpha=a) for s, a in [(3, 1.0), (0, 2.0), (9, 0.5), (3, 0.25)]]
    pack = Pack(configs, torch.device("cpu"))
    alone = Pack(configs[2:3], torch.device("cpu"))
    for row, cfg in zip(pack.flat, configs, strict=True):
        assert torch.equal(row, pack.model.init_member(cfg.seed, cfg.alpha, torch.float64))
    assert torch.equal(alone.flat[0], pack.flat[2])


@pytest.mark.parametrize("model", ["mlp", "transformer"])
def test_alpha_scales_every_parameter(model: str) -> None:
    _, _, net, _ = _setup(model, "mod")
    one = net.init_member(1, 1.0, torch.float64)
    assert torch.equal(net.init_member(1, 2.0, torch.float64), 2 * one)
    assert torch.equal(net.init_member(1, 0.5, torch.float32), 0.5 * net.init_member(1, 1.0, torch.float32))


def test_mlp_init_scales() -> None:
    """nn.Linear-style U(+-1/sqrt(fan_in)) weights; N(0, 1) embeddings."""
    net = Model(RunConfig(task="x-y", p=7, width=64), Dims(7, 2, 7, 49))
    w = net.views(net.init_member(0, 1.0, torch.float64).unsqueeze(0))
    bound = 1 / (2 * 64) ** 0.5
    assert w["w0"].abs().max() <= bound and w["w0"].abs().max() > 0.9 * bound
    assert 0.7 < w["embed"].std() < 1.3


@pytest.mark.parametrize("model,family", CASES)
def test_members_are_independent(model: str, family: str) -> None:
    _, data, net, x = _setup(model, family, depth=2)
    flat = _pack_params(net).requires_grad_(True)
    labels = data.y[: len(x)]
    logits = net.forward(flat, x.expand(M, *x.shape))
    loss0 = torch.nn.functional.cross_entropy(logits[0], labels)
    (grad,) = torch.autograd.grad(loss0, flat)
    assert grad[0].abs().sum() > 0
    assert torch.equal(grad[1:], torch.zeros_like(grad[1:]))


@pytest.mark.parametrize("model,family", CASES)
@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh", "quadratic"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_member_forward_and_grad_equal_alone(model: str, family: str, activation: str, dtype) -> None:
    """Bitwise on one CPU thread: a member's logits and gradient do not depend on the other members.
    Width 6 and 10 rows: per-member activation sizes that are not a multiple of any SIMD width, so a lone
    member's tail runs through scalar code where a pack's runs vectorized."""
    _, data, net, x = _setup(model, family, dtype, depth=2, width=6, d_mlp=10, activation=activation)
    flat = torch.stack([net.init_member(seed, 1.0, dtype) for seed in range(20)]).requires_grad_(True)
    labels = data.y[: len(x)]
    packed = net.forward(flat, x.expand(len(flat), *x.shape))
    (grad,) = torch.autograd.grad(_member_losses(packed, labels).sum(), flat)
    for i in (0, 7, 19):
        alone = flat[i : i + 1].detach().requires_grad_(True)
        logits = net.forward(alone, x.unsqueeze(0))
        (g,) = torch.autograd.grad(_member_losses(logits, labels).sum(), alone)
        assert torch.equal(logits[0], packed[i].detach())
        assert torch.equal(g[0], grad[i])


def _member_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per member [M], as Pack.train_step sums them."""
    target = labels.expand(len(logits), -1)
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none").mean(1)


def test_transformer_reads_both_operands() -> None:
    """The answer is read at the '=' position, which attends to both operands."""
    _, _, net, _ = _setup("transformer", "mod")
    flat = _pack_params(net)[:1]
    a = net.forward(flat, torch.tensor([[[1, 2]]]))
    b = net.forward(flat, torch.tensor([[[1, 3]]]))
    c = net.forward(flat, torch.tensor([[[4, 2]]]))
    assert not torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gelu_is_exact_gelu(dtype: torch.dtype) -> None:
    """The pack-invariant GELU equals torch's exact (erf) GELU evaluated in float64, gradient included."""
    x = torch.linspace(-8, 8, 1001, dtype=dtype).requires_grad_(True)
    x64 = x.detach().double().requires_grad_(True)
    ours, ref = ACTIVATIONS.get("gelu").fn(x), torch.nn.functional.gelu(x64)
    tol = dict(rtol=1e-14, atol=1e-15) if dtype == torch.float64 else dict(rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours, ref.to(dtype), **tol)
    grad, grad_ref = torch.autograd.grad(ours.sum(), x)[0], torch.autograd.grad(ref.sum(), x64)[0]
    torch.testing.assert_close(grad, grad_ref.to(dtype), **tol)
