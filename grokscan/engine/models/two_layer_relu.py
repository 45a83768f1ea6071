"""Two-layer ReLU network with a fixed output layer, as analysed by Xu et al. 2023 ("Benign overfitting and
grokking in ReLU networks for XOR cluster data") after Frei et al. 2022: f(x) = sum_j a_j relu(<w_j, x>)
over `width` neurons, no biases, a_j = +1/sqrt(width) for the first half and -1/sqrt(width) for the
second, never trained; only W [n_inputs, width] is a parameter. The two logits are (-f/2, f/2), so two-class
cross-entropy is Xu et al.'s logistic loss log(1 + exp(-y f)). Init: W ~ N(0, init_std^2) with init_std =
1e-3 / sqrt(n_inputs), grokscan's choice of the small initialization their theorems assume (times alpha).
For real-valued feature tasks with two classes (e.g. xor_cluster)."""

from __future__ import annotations

import math

import torch

from grokscan.config import RunConfig
from grokscan.engine.models.layout import Architecture, Model, Spec
from grokscan.registry import ACTIVATIONS, MODELS, TASKS, cfg_error
from grokscan.tasks.base import Dims

INIT_SCALE = 1e-3  # init_std = INIT_SCALE / sqrt(n_inputs)


class TwoLayerReLU(Architecture):
    name = "relu2"
    fields = ("width", "depth")
    default_width = 512

    def validate(self, cfg: RunConfig) -> None:
        dims = TASKS.get(cfg.task).dims(cfg)
        if dims.n_vocab is not None or dims.n_classes != 2 or dims.n_outputs is not None:
            raise cfg_error(
                "model", cfg.model, f"relu2 takes real-valued features and 2 classes, not task {cfg.task!r}"
            )
        if cfg.depth != 1:
            raise cfg_error("depth", cfg.depth, "relu2 has one hidden layer: depth 1")
        if cfg.width < 2 or cfg.width % 2:
            raise cfg_error(
                "width", cfg.width, "relu2 needs an even width >= 2 (half +1, half -1 output weights)"
            )

    def spec(self, cfg: RunConfig, dims: Dims) -> Spec:
        return {"w": ((dims.n_inputs, cfg.width), ("normal", INIT_SCALE / math.sqrt(dims.n_inputs)))}

    def forward(self, model: Model, w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        m = model.cfg.width
        a = torch.full((m,), 1 / math.sqrt(m), dtype=x.dtype, device=x.device)
        a[m // 2 :] *= -1
        f = model.act(torch.bmm(x, w["w"])) @ a  # [M, B]
        return torch.stack([-f / 2, f / 2], -1)

    def row_elements(self, cfg: RunConfig, dims: Dims) -> tuple[int, int]:
        """Saved: the hidden pre-activations and activations, f and the log-probabilities; the backward's
        transients at its peak: two gradients of the hidden layer."""
        w, act = cfg.width, ACTIVATIONS.get(cfg.activation)
        return act.saved * w + 3 + 2 * w, act.made * w + 4


MODELS.register(TwoLayerReLU())
