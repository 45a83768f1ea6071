"""The MLP's folded first layer, (E W_j)[x_j] summed over input positions, against the unfolded computation
it replaces, written out in plain torch: concatenated embeddings times the first layer (nn.Embedding +
nn.Linear), forward and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from grokscan.config import RunConfig
from grokscan.engine.models import Model
from grokscan.engine.models.mlp import folded_first_layer
from grokscan.registry import TASKS

CASES = {
    "x+y": dict(task="x+y", p=11, width=8, depth=1),
    "parity-depth2": dict(task="parity", n_bits=6, k_bits=2, n_samples=None, width=8, depth=2),
    "max_of_seq": dict(task="max_of_seq", width=8),
}


def _unfolded(net: Model, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One member at a time, as nn.Embedding -> flatten -> nn.Linear layers -> logits."""
    out = []
    for member in range(flat.shape[0]):
        w = {k: v[member] for k, v in net.views(flat).items()}
        h = F.embedding(x[member], w["embed"]).flatten(1)
        for i in range(net.cfg.depth):
            h = net.act(h @ w[f"w{i}"] + w[f"b{i}"])
        out.append(h @ w["w_out"] + w["b_out"])
    return torch.stack(out)


@pytest.mark.parametrize("fields", CASES.values(), ids=CASES.keys())
def test_folded_mlp_equals_unfolded(fields: dict) -> None:
    cfg = RunConfig(**fields, dtype="float64")
    task = TASKS.get(cfg.task)
    data, net = task.table(cfg), Model(cfg, task.dims(cfg))
    flat = torch.stack([net.init_member(seed, 1.0 + 0.3 * seed, torch.float64) for seed in range(3)])
    g = torch.Generator().manual_seed(0)
    x = torch.stack([data.x[torch.randperm(len(data.x), generator=g)[:40]] for _ in range(3)])
    flat_a, flat_b = flat.clone().requires_grad_(True), flat.clone().requires_grad_(True)
    got = net.forward(flat_a, x).reshape(3, 40, -1)
    want = _unfolded(net, flat_b, x)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    weights = torch.randn(want.shape, generator=g, dtype=torch.float64)
    (grad_a,) = torch.autograd.grad((got * weights).sum(), flat_a)
    (grad_b,) = torch.autograd.grad((want * weights).sum(), flat_b)
    torch.testing.assert_close(grad_a, grad_b, rtol=1e-10, atol=1e-12)
    assert grad_a[:, slice(*net.offsets["embed"])].abs().sum() > 0  # the embedding does get a gradient


def test_folded_first_layer_repeated_tokens_accumulate() -> None:
    """Rows that share a token add their gradients into that token's row of the folded table."""
    table = torch.randn(1, 3, 2, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(1, 4, 5, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, 5, dtype=torch.float64, requires_grad=True)
    x = torch.tensor([[[1, 1], [1, 2], [1, 0]]])
    out = folded_first_layer(table, weight, bias, x)
    (grad,) = torch.autograd.grad(out.sum(), table)
    ones = torch.ones(5, dtype=torch.float64)
    w0, w1 = weight[0, :2].detach(), weight[0, 2:].detach()
    want = torch.stack([w1 @ ones, 3 * (w0 @ ones) + w1 @ ones, w1 @ ones])  # token 1: three x0, one x1
    torch.testing.assert_close(grad[0], want)
