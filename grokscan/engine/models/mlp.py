"""MLP: token embeddings concatenated (or pixel features) -> `depth` hidden layers of `width` -> logits.
Init as PyTorch's nn.Linear / nn.Embedding defaults: U(±1/sqrt(fan_in)) weights and biases, N(0, 1)
embeddings. A sequence task with one answer position (max_of_seq) gets logits [M, B, 1, C]; one with
several needs causal masking (teacher forcing): the transformer.

With token inputs the embedding is folded into the first layer: E[x] W = (E W)[x], exact in real
arithmetic. Each member multiplies its [n_vocab, width] table by the first layer's block for each input
position once and gathers rows per example, instead of a [B, n_inputs * width] x [n_inputs * width, width]
product: most of that layer's FLOPs, forward and backward, are gone. The float sums run in another order
than the unfolded product, so curves differ from grokscan <= 0.1's in the last bits (run ids do not)."""

from __future__ import annotations

import math

import torch

from grokscan.config import RunConfig
from grokscan.engine.models.layout import Architecture, Model, Spec
from grokscan.registry import ACTIVATIONS, MODELS, TASKS, cfg_error
from grokscan.tasks.base import Dims


class MLP(Architecture):
    name = "mlp"
    fields = ("width", "depth")
    default_width = 64

    def validate(self, cfg: RunConfig) -> None:
        n_out = TASKS.get(cfg.task).dims(cfg).n_outputs
        if n_out is not None and n_out > 1:
            raise cfg_error(
                "model",
                cfg.model,
                f"task {cfg.task!r} predicts {n_out} answer tokens with teacher forcing, which needs causal "
                "masking: use model='transformer'",
            )

    def spec(self, cfg: RunConfig, dims: Dims) -> Spec:
        w, n_in = cfg.width, dims.n_inputs
        spec: Spec = {}
        if dims.n_vocab is not None:
            spec["embed"] = ((dims.n_vocab, w), ("normal", 1.0))
            fan_in = n_in * w
        else:
            fan_in = n_in
        for i in range(cfg.depth):
            bound = 1 / math.sqrt(fan_in)
            spec[f"w{i}"] = ((fan_in, w), ("uniform", bound))
            spec[f"b{i}"] = ((w,), ("uniform", bound))
            fan_in = w
        bound = 1 / math.sqrt(fan_in)
        spec["w_out"] = ((fan_in, dims.n_classes), ("uniform", bound))
        spec["b_out"] = ((dims.n_classes,), ("uniform", bound))
        return spec

    def forward(self, model: Model, w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        layers = [(w[f"w{i}"], w[f"b{i}"]) for i in range(model.cfg.depth)] + [(w["w_out"], w["b_out"])]
        if model.n_vocab is None:
            h = torch.baddbmm(layers[0][1].unsqueeze(1), x, layers[0][0])
        else:
            h = folded_first_layer(w["embed"], *layers[0], x)
        for weight, bias in layers[1:]:
            h = torch.baddbmm(bias.unsqueeze(1), model.act(h), weight)
        return h if model.dims.n_outputs is None else h.unsqueeze(2)

    def row_elements(self, cfg: RunConfig, dims: Dims) -> tuple[int, int]:
        """Training peak = tensors autograd saves (token ids, int64, count as 2 elements; or the features)
        plus a loss's saved log-probabilities and the backward's transients at its peak: the logits' two
        gradients and two gradients of the widest layer. Forward: a token row's gathered rows and their
        running sums."""
        w, c, act = cfg.width, dims.n_classes, ACTIVATIONS.get(cfg.activation)
        tokens = dims.n_vocab is not None
        saved = (2 if tokens else 1) * dims.n_inputs + cfg.depth * act.saved * w + c
        first = (2 * dims.n_inputs - 1) * w if tokens else dims.n_inputs
        widest = w if tokens else max(dims.n_inputs, w)
        return saved + 2 * c + 2 * widest, first + cfg.depth * act.made * w + 2 * c


MODELS.register(MLP())


def folded_first_layer(
    table: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """concat_j(E[x_j]) W + b as sum_j T_j[x_j] with T_j = E W_j (+ b for j = 0), per member: table E
    [M, V, d], weight W [M, n_in * d, k] (W_j: its rows for input position j), bias [M, k], token ids x
    [M, B, n_in] -> [M, B, k]. The gather's backward is an index_add over each member's own rows, in row
    order, so a member's gradient does not depend on its pack."""
    m, n_vocab, d = table.shape
    n_in = x.shape[2]
    blocks = weight.view(m, n_in, d, weight.shape[2]).unbind(1)
    folded = [torch.bmm(table, block) for block in blocks]  # input positions (2 for x+y), not members
    folded[0] = folded[0] + bias.unsqueeze(1)
    # rows of member i, position j are at (i * n_in + j) * V in the stacked tables
    offset = torch.arange(m * n_in, device=x.device).view(m, 1, n_in) * n_vocab
    h = _GatherSum.apply(torch.stack(folded, 1).reshape(m * n_in * n_vocab, -1), (x + offset).view(-1, n_in))
    return h.view(m, x.shape[1], -1)


class _GatherSum(torch.autograd.Function):
    """sum_j rows[idx[:, j]]: one pass (embedding_bag) instead of a gathered copy per position and their
    sum, the same float sums in the same order. Backward: index_add per position (embedding_bag's own
    backward is slower on CPU), as autograd does for a gather."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(idx)
        ctx.n_rows = rows.shape[0]
        return torch.nn.functional.embedding_bag(idx, rows, mode="sum")

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (idx,) = ctx.saved_tensors
        rows = grad.new_zeros(ctx.n_rows, grad.shape[1])
        for j in range(idx.shape[1]):
            rows.index_add_(0, idx[:, j], grad)
        return rows, None
