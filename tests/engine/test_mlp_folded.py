"""The MLP's folded first layer, T_j[x_j] summed over input positions, against the unfolded computation
it replaces, written out in plain torch, forward and gradients: concatenated embeddings (nn.Embedding +
nn.Linear), the summed embedding enc(x) + enc(y) (Liu et al. 2022), and concatenated one-hot vectors into
bias-free layers (Prieto et al. 2025)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from grokscan.config import RunConfig
from grokscan.engine.models import Model
from grokscan.engine.models.mlp import gather_sum
from grokscan.registry import TASKS

CASES = {
    "x+y": dict(task="x+y", p=11, width=8, depth=1),
    "x+y-embed_sum": dict(task="x+y", p=11, width=8, depth=2, mlp_input="embed_sum", embed_dim=3),
    "x+y-onehot-no-biases": dict(task="x+y", p=11, width=8, depth=2, mlp_input="onehot", biases="off"),
    "x-y-concat-embed_dim": dict(task="x-y", p=7, width=6, embed_dim=2, biases="off"),
    "parity-depth2": dict(task="parity", n_bits=6, k_bits=2, n_samples=None, width=8, depth=2),
    "max_of_seq": dict(task="max_of_seq", width=8),
}


def _unfolded(net: Model, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One member at a time, as nn.Embedding -> flatten -> nn.Linear layers -> logits."""
    out = []
    for member in range(flat.shape[0]):
        w = {k: v[member] for k, v in net.views(flat).items()}
        if net.cfg.mlp_input == "onehot":
            h = F.one_hot(x[member], net.n_vocab).to(flat.dtype).flatten(1)
        elif net.cfg.mlp_input == "embed_sum":
            h = F.embedding(x[member], w["embed"]).sum(1)
        else:
            h = F.embedding(x[member], w["embed"]).flatten(1)
        for i in range(net.cfg.depth):
            h = net.act(F.linear(h, w[f"w{i}"].T, w.get(f"b{i}")))
        out.append(F.linear(h, w["w_out"].T, w.get("b_out")))
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
    first = "w0" if cfg.mlp_input == "onehot" else "embed"
    assert grad_a[:, slice(*net.offsets[first])].abs().sum() > 0  # the token rows do get a gradient
    assert ("b0" in net.offsets) == (cfg.biases is None)


def test_folded_first_layer_repeated_tokens_accumulate() -> None:
    """Rows that share a token add their gradients into that token's row of the folded table."""
    table = torch.randn(1, 3, 2, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(1, 4, 5, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, 5, dtype=torch.float64, requires_grad=True)
    x = torch.tensor([[[1, 1], [1, 2], [1, 0]]])
    out = gather_sum([torch.bmm(table, block) for block in weight.view(1, 2, 2, 5).unbind(1)], bias, x)
    (grad,) = torch.autograd.grad(out.sum(), table)
    ones = torch.ones(5, dtype=torch.float64)
    w0, w1 = weight[0, :2].detach(), weight[0, 2:].detach()
    want = torch.stack([w1 @ ones, 3 * (w0 @ ones) + w1 @ ones, w1 @ ones])  # token 1: three x0, one x1
    torch.testing.assert_close(grad[0], want)
