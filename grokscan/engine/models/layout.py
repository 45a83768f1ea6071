"""A pack's model: the architecture entry's parameter spec laid out as one flat row per member.

All parameters of a member live in one flat row of a [M, P] tensor; `Model.views` cuts it into named
weights. The optimizer then updates a pack with a handful of elementwise ops, whatever the architecture.
After init every parameter is multiplied by the run's alpha (Liu et al. 2022, "Omnigrok").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from grokscan.config import RunConfig
from grokscan.registry import ACTIVATIONS, MODELS, Entry
from grokscan.tasks.base import Dims

# name -> (shape, init) where init is ("uniform", bound), ("normal", std), ("zeros", 0) or ("ones", 1)
Spec = dict[str, tuple[tuple[int, ...], tuple[str, float]]]


class Architecture(Entry):
    """A model entry: its parameter spec, batched forward pass and activation memory per row.

    Subclasses set `name`, `fields` (RunConfig fields beyond width and depth that apply) and
    `default_width`, and implement the three methods below.
    """

    default_width: int = 64

    def spec(self, cfg: RunConfig, dims: Dims) -> Spec:
        raise NotImplementedError

    def forward(self, model: Model, w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Logits [M, B, C] for inputs x [M, B, n_inputs] (token ids) or [M, B, F] (features)."""
        raise NotImplementedError

    def row_elements(self, cfg: RunConfig, dims: Dims) -> tuple[int, int]:
        """Activation elements per row: (training peak, forward total); see engine.memory."""
        raise NotImplementedError

    def embedding(self, model: Model, w: dict[str, torch.Tensor]) -> torch.Tensor:
        """The token embedding [M, V, d] that progress measures read (the Fourier spectrum)."""
        return w["embed"]


class Model:
    """Architecture of one pack: parameter layout, init and a batched forward pass."""

    def __init__(self, cfg: RunConfig, dims: Dims) -> None:
        self.cfg, self.dims = cfg, dims
        self.n_vocab, self.n_inputs, self.n_classes = dims.n_vocab, dims.n_inputs, dims.n_classes
        self.arch: Architecture = MODELS.get(cfg.model)
        self.act = ACTIVATIONS.get(cfg.activation).fn
        self.spec = self.arch.spec(cfg, dims)
        self.offsets: dict[str, tuple[int, int]] = {}
        start = 0
        for name, (shape, _) in self.spec.items():
            self.offsets[name] = (start, start + math.prod(shape))
            start += math.prod(shape)
        self.n_params = start

    def init_member(self, seed: int, alpha: float, dtype: torch.dtype) -> torch.Tensor:
        """One member's flat parameters, drawn on the CPU from `seed` alone (same on every device)."""
        gen = torch.Generator().manual_seed(seed)
        parts = []
        for shape, (kind, scale) in self.spec.values():
            if kind == "uniform":
                parts.append((torch.rand(shape, generator=gen, dtype=dtype) * 2 - 1) * scale)
            elif kind == "normal":
                parts.append(torch.randn(shape, generator=gen, dtype=dtype) * scale)
            elif kind == "ones":  # LayerNorm gains
                parts.append(torch.ones(shape, dtype=dtype))
            else:
                parts.append(torch.zeros(shape, dtype=dtype))
        return torch.cat([part.reshape(-1) for part in parts]) * alpha

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named weights [M, *shape] as views into flat [M, P]."""
        m = flat.shape[0]
        return {name: flat[:, a:b].view(m, *self.spec[name][0]) for name, (a, b) in self.offsets.items()}

    def forward(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits [M, B, C] for inputs x [M, B, n_inputs] (token ids) or [M, B, F] (features)."""
        return self.arch.forward(self, self.views(flat), x)

    def embedding(self, flat: torch.Tensor) -> torch.Tensor:
        """Token embedding rows [M, V, d] (`Architecture.embedding`)."""
        return self.arch.embedding(self, self.views(flat))


def embed(table: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-member embedding lookup: table [M, V, d], token ids x [M, ...] -> [M, ..., d]."""
    m, n_vocab = table.shape[0], table.shape[1]
    offset = torch.arange(m, device=x.device).view(m, *([1] * (x.dim() - 1))) * n_vocab
    return F.embedding(x + offset, table.reshape(m * n_vocab, -1))


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Per-member x [M, B, k] @ weight [M, k, n] (+ bias [M, n])."""
    return torch.bmm(x, weight) if bias is None else torch.baddbmm(bias.unsqueeze(1), x, weight)
