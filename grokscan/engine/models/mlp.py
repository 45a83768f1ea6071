"""MLP: token embeddings concatenated (or pixel features) -> `depth` hidden layers of `width` -> logits.
Init as PyTorch's nn.Linear / nn.Embedding defaults: U(±1/sqrt(fan_in)) weights and biases, N(0, 1)
embeddings. A sequence task with one answer position (max_of_seq) gets logits [M, B, 1, C]; one with
several needs causal masking (teacher forcing): the transformer."""

from __future__ import annotations

import math

import torch

from grokscan.config import RunConfig
from grokscan.engine.models.layout import Architecture, Model, Spec, embed
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
        m, b = x.shape[:2]
        h = embed(w["embed"], x).reshape(m, b, -1) if model.n_vocab is not None else x
        for i in range(model.cfg.depth):
            h = model.act(torch.baddbmm(w[f"b{i}"].unsqueeze(1), h, w[f"w{i}"]))
        logits = torch.baddbmm(w["b_out"].unsqueeze(1), h, w["w_out"])
        return logits if model.dims.n_outputs is None else logits.unsqueeze(2)

    def row_elements(self, cfg: RunConfig, dims: Dims) -> tuple[int, int]:
        """Training peak = tensors autograd saves plus the backward's transients at its peak: the logits' two
        gradients and two gradients of the widest layer."""
        w, c, act = cfg.width, dims.n_classes, ACTIVATIONS.get(cfg.activation)
        inputs = dims.n_inputs * w if dims.n_vocab is not None else dims.n_inputs
        saved = inputs + cfg.depth * act.saved * w + c  # + log-probabilities
        return saved + 2 * c + 2 * max(inputs, w), inputs + cfg.depth * act.made * w + 2 * c


MODELS.register(MLP())
