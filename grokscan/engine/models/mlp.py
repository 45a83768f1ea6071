"""MLP: the inputs of a token task (or pixel features) -> `depth` hidden layers of `width` -> logits.
Init as PyTorch's nn.Linear / nn.Embedding defaults: U(±1/sqrt(fan_in)) weights and biases, N(0, 1)
embeddings. A sequence task with one answer position (max_of_seq) gets logits [M, B, 1, C]; one with
several needs causal masking (teacher forcing): the transformer.

How a token task's operands enter the first layer (`mlp_input`):
- "embed_concat" (None, the default): learned embeddings of the operands, concatenated (grokscan 0.1).
- "embed_sum": one learned embedding, summed over the operands, enc(x) + enc(y) as in Liu et al. 2022,
  "Towards understanding grokking" (ejmichaud/grokking-squared, phase_diagram-classification.ipynb cell 1,
  lines 199-203); `embed_dim` sets its width (their latent is 1-D).
- "onehot": the operands' one-hot vectors, concatenated, straight into the first layer, as Prieto et al.
  2025 (LucasPrietoAl/grokking-at-the-edge-of-numerical-stability datasets.py:56-59, utils.py:186).
`biases="off"` drops every bias (Prieto et al.'s MLP, utils.py:186-187 bias=False); "on" and "all" keep them.

With token inputs the embedding is folded into the first layer: E[x] W = (E W)[x], exact in real
arithmetic. Each member multiplies its [n_vocab, embed_dim] table by the first layer's block for each input
position once and gathers rows per example, instead of a [B, n_inputs * embed_dim] x [., width] product:
most of that layer's FLOPs, forward and backward, are gone. A one-hot input is the same gather from the
first layer's own blocks. The float sums run in another order than the unfolded product, so curves differ
from grokscan <= 0.1's in the last bits (run ids do not)."""

from __future__ import annotations

import math

import torch

from grokscan.config import RunConfig
from grokscan.engine.models.layout import Architecture, Model, Spec, linear
from grokscan.registry import ACTIVATIONS, MODELS, TASKS, cfg_error
from grokscan.tasks.base import Dims

INPUTS = ("embed_concat", "embed_sum", "onehot")  # the first reproduces grokscan 0.1 (stored None)


class MLP(Architecture):
    name = "mlp"
    fields = ("width", "depth", "mlp_input", "embed_dim", "biases")
    default_width = 64

    def validate(self, cfg: RunConfig) -> None:
        dims = TASKS.get(cfg.task).dims(cfg)
        if dims.n_outputs is not None and dims.n_outputs > 1:
            raise cfg_error(
                "model",
                cfg.model,
                f"task {cfg.task!r} predicts {dims.n_outputs} answer tokens with teacher forcing, which "
                "needs causal masking: use model='transformer'",
            )
        if cfg.mlp_input not in (None, *INPUTS):
            raise cfg_error("mlp_input", cfg.mlp_input, f"one of {', '.join(map(repr, INPUTS))} or None")
        if cfg.biases not in (None, "on", "off", "all"):
            raise cfg_error("biases", cfg.biases, "one of 'on', 'off', 'all' (= 'on' for the mlp) or None")
        if dims.n_vocab is None and cfg.mlp_input not in (None, "embed_concat"):
            raise cfg_error("mlp_input", cfg.mlp_input, f"task {cfg.task!r} has pixel inputs, not tokens")
        if cfg.embed_dim is not None and cfg.embed_dim < 1:
            raise cfg_error("embed_dim", cfg.embed_dim, "must be >= 1 (or None for width)")

    def normalize(self, cfg: RunConfig) -> dict:
        tokens = TASKS.get(cfg.task).dims(cfg).n_vocab is not None
        mode = None if cfg.mlp_input == "embed_concat" else cfg.mlp_input
        embedded = tokens and mode != "onehot"
        return {
            "mlp_input": mode,
            "embed_dim": cfg.embed_dim if embedded and cfg.embed_dim != cfg.width else None,
            "biases": None if cfg.biases in ("on", "all") else cfg.biases,
        }

    def spec(self, cfg: RunConfig, dims: Dims) -> Spec:
        w, n_in = cfg.width, dims.n_inputs
        spec: Spec = {}
        if dims.n_vocab is None:
            fan_in = n_in
        elif cfg.mlp_input == "onehot":
            fan_in = n_in * dims.n_vocab
        else:
            e = cfg.embed_dim or w
            spec["embed"] = ((dims.n_vocab, e), ("normal", 1.0))
            fan_in = e if cfg.mlp_input == "embed_sum" else n_in * e
        for i in range(cfg.depth):
            bound = 1 / math.sqrt(fan_in)
            spec[f"w{i}"] = ((fan_in, w), ("uniform", bound))
            if cfg.biases is None:
                spec[f"b{i}"] = ((w,), ("uniform", bound))
            fan_in = w
        bound = 1 / math.sqrt(fan_in)
        spec["w_out"] = ((fan_in, dims.n_classes), ("uniform", bound))
        if cfg.biases is None:
            spec["b_out"] = ((dims.n_classes,), ("uniform", bound))
        return spec

    def forward(self, model: Model, w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        names = [*(f"{i}" for i in range(model.cfg.depth)), "_out"]
        layers = [(w[f"w{n}"], w.get(f"b{n}")) for n in names]
        if model.n_vocab is None:
            h = linear(x, *layers[0])
        else:
            h = gather_sum(first_layer_tables(model, w), layers[0][1], x)
        for weight, bias in layers[1:]:
            h = linear(model.act(h), weight, bias)
        return h if model.dims.n_outputs is None else h.unsqueeze(2)

    def embedding(self, model: Model, w: dict[str, torch.Tensor]) -> torch.Tensor:
        """A one-hot MLP's token rows are the first operand's block of its first layer."""
        if model.cfg.mlp_input == "onehot":
            return w["w0"][:, : model.n_vocab]
        return w["embed"]

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


def first_layer_tables(model: Model, w: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Per input position j, the table T_j [M, V, width] whose row x_j is that operand's share of the
    first layer: E W_j (concat: W_j the block of rows for position j), E W (sum), or W_j itself (onehot)."""
    weight, mode, n_in = w["w0"], model.cfg.mlp_input, model.n_inputs
    m, k = weight.shape[0], weight.shape[2]
    if mode == "onehot":
        return list(weight.view(m, n_in, model.n_vocab, k).unbind(1))
    table = w["embed"]
    if mode == "embed_sum":
        return [torch.bmm(table, weight)] * n_in
    return [torch.bmm(table, block) for block in weight.view(m, n_in, table.shape[2], k).unbind(1)]


def gather_sum(tables: list[torch.Tensor], bias: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """sum_j T_j[x_j] (+ bias, added to T_0), per member: tables [M, V, k] per input position, bias [M, k]
    or None, token ids x [M, B, n_in] -> [M, B, k]. The gather's backward is an index_add over each
    member's own rows, in row order, so a member's gradient does not depend on its pack."""
    m, n_vocab, _ = tables[0].shape
    n_in = len(tables)
    if bias is not None:
        tables = [tables[0] + bias.unsqueeze(1), *tables[1:]]
    # rows of member i, position j are at (i * n_in + j) * V in the stacked tables
    offset = torch.arange(m * n_in, device=x.device).view(m, 1, n_in) * n_vocab
    rows = torch.stack(tables, 1).reshape(m * n_in * n_vocab, -1)
    return _GatherSum.apply(rows, (x + offset).view(-1, n_in)).view(m, x.shape[1], -1)


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
