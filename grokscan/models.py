"""Models written with a leading member dimension: a pack of M runs is one model with weights [M, ...].

All parameters of a member live in one flat row of a [M, P] tensor; `Model.views` cuts it into named
weights. The optimizer then updates a pack with a handful of elementwise ops, whatever the architecture.

Inits: `mlp` uses PyTorch's nn.Linear/nn.Embedding defaults (U(±1/sqrt(fan_in)), N(0, 1)); `transformer`
follows Nanda et al. 2023 (no LayerNorm, N(0, 1/d_model) weights, zero biases, unembed N(0, 1/n_vocab)).
After init every parameter is multiplied by the run's alpha (Liu et al. 2022, "Omnigrok").
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from grokscan.config import RunConfig


def _gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact GELU, x * Phi(x). Not F.gelu: its CPU kernel rounds a tensor's vectorized body and scalar tail
    differently, so a member's activations would depend on where its rows fall in the pack's tensor."""
    return 0.5 * x * (1 + torch.erf(x * math.sqrt(0.5)))


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": _gelu,
    "tanh": torch.tanh,
    "quadratic": torch.square,
}

# name -> (shape, init) where init is ("uniform", bound) or ("normal", std) or ("zeros", 0)
Spec = dict[str, tuple[tuple[int, ...], tuple[str, float]]]


class Model:
    """Architecture of one pack: parameter layout, init and a batched forward pass."""

    def __init__(self, cfg: RunConfig, n_vocab: int | None, n_inputs: int, n_classes: int) -> None:
        self.cfg, self.n_vocab, self.n_inputs, self.n_classes = cfg, n_vocab, n_inputs, n_classes
        self.act = ACTIVATIONS[cfg.activation]
        self.spec = self._mlp_spec() if cfg.model == "mlp" else self._transformer_spec()
        self.offsets: dict[str, tuple[int, int]] = {}
        start = 0
        for name, (shape, _) in self.spec.items():
            self.offsets[name] = (start, start + math.prod(shape))
            start += math.prod(shape)
        self.n_params = start

    def _mlp_spec(self) -> Spec:
        w, n_in = self.cfg.width, self.n_inputs
        spec: Spec = {}
        if self.n_vocab is not None:
            spec["embed"] = ((self.n_vocab, w), ("normal", 1.0))
            fan_in = n_in * w
        else:
            fan_in = n_in
        for i in range(self.cfg.depth):
            bound = 1 / math.sqrt(fan_in)
            spec[f"w{i}"] = ((fan_in, w), ("uniform", bound))
            spec[f"b{i}"] = ((w,), ("uniform", bound))
            fan_in = w
        bound = 1 / math.sqrt(fan_in)
        spec["w_out"] = ((fan_in, self.n_classes), ("uniform", bound))
        spec["b_out"] = ((self.n_classes,), ("uniform", bound))
        return spec

    def _transformer_spec(self) -> Spec:
        d, d_mlp, std = self.cfg.width, self.cfg.d_mlp, 1 / math.sqrt(self.cfg.width)
        spec: Spec = {
            "embed": ((self.n_vocab + 1, d), ("normal", std)),  # +1: the "=" token read out last
            "pos": ((self.n_inputs + 1, d), ("normal", std)),
        }
        for layer in range(self.cfg.depth):
            for name in ("q", "k", "v", "o"):
                spec[f"l{layer}.{name}"] = ((d, d), ("normal", std))
            spec[f"l{layer}.mlp_in"] = ((d, d_mlp), ("normal", std))
            spec[f"l{layer}.mlp_in_b"] = ((d_mlp,), ("zeros", 0.0))
            spec[f"l{layer}.mlp_out"] = ((d_mlp, d), ("normal", std))
            spec[f"l{layer}.mlp_out_b"] = ((d,), ("zeros", 0.0))
        spec["unembed"] = ((d, self.n_classes), ("normal", 1 / math.sqrt(self.n_classes)))
        return spec

    def init_member(self, seed: int, alpha: float, dtype: torch.dtype) -> torch.Tensor:
        """One member's flat parameters, drawn on the CPU from `seed` alone (same on every device)."""
        gen = torch.Generator().manual_seed(seed)
        parts = []
        for shape, (kind, scale) in self.spec.values():
            if kind == "uniform":
                parts.append((torch.rand(shape, generator=gen, dtype=dtype) * 2 - 1) * scale)
            elif kind == "normal":
                parts.append(torch.randn(shape, generator=gen, dtype=dtype) * scale)
            else:
                parts.append(torch.zeros(shape, dtype=dtype))
        return torch.cat([part.reshape(-1) for part in parts]) * alpha

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named weights [M, *shape] as views into flat [M, P]."""
        m = flat.shape[0]
        return {name: flat[:, a:b].view(m, *self.spec[name][0]) for name, (a, b) in self.offsets.items()}

    def forward(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits [M, B, C] for inputs x [M, B, arity] (token ids) or [M, B, F] (features)."""
        w = self.views(flat)
        return self._mlp(w, x) if self.cfg.model == "mlp" else self._transformer(w, x)

    def _embed(self, table: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        m, n_vocab = table.shape[0], table.shape[1]
        offset = torch.arange(m, device=x.device).view(m, *([1] * (x.dim() - 1))) * n_vocab
        return F.embedding(x + offset, table.reshape(m * n_vocab, -1))

    def _mlp(self, w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        m, b = x.shape[:2]
        h = self._embed(w["embed"], x).reshape(m, b, -1) if self.n_vocab is not None else x
        for i in range(self.cfg.depth):
            h = self.act(torch.baddbmm(w[f"b{i}"].unsqueeze(1), h, w[f"w{i}"]))
        return torch.baddbmm(w["b_out"].unsqueeze(1), h, w["w_out"])

    def _transformer(self, w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        m, b, t = x.shape
        eq = torch.full((m, b, 1), self.n_vocab, dtype=x.dtype, device=x.device)
        h = self._embed(w["embed"], torch.cat([x, eq], 2)) + w["pos"].unsqueeze(1)  # [M, B, T, d]
        for layer in range(self.cfg.depth):
            last = layer == self.cfg.depth - 1  # the answer is read at the last position only
            h = self._block(w, f"l{layer}.", h, h[:, :, -1:] if last else h)
        return torch.bmm(h[:, :, -1], w["unembed"])

    def _block(self, w: dict[str, torch.Tensor], pre: str, h: torch.Tensor, hq: torch.Tensor) -> torch.Tensor:
        m, b, t, d = h.shape
        tq, heads = hq.shape[2], self.cfg.heads
        dh = d // heads

        def project(inp: torch.Tensor, name: str) -> torch.Tensor:  # -> [M, B, heads, T, dh]
            out = torch.bmm(inp.reshape(m, -1, d), w[pre + name])
            return out.view(m, b, inp.shape[2], heads, dh).transpose(2, 3)

        q, k, v = project(hq, "q"), project(h, "k"), project(h, "v")
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
        query_pos = torch.arange(t - tq, t, device=h.device)
        causal = torch.arange(t, device=h.device)[None, :] > query_pos[:, None]
        attn = scores.masked_fill(causal, float("-inf")).softmax(-1)
        z = (attn @ v).transpose(2, 3).reshape(m, b * tq, d)
        hq = hq + torch.bmm(z, w[pre + "o"]).view(m, b, tq, d)
        flat_hq = hq.reshape(m, b * tq, d)
        hidden = self.act(torch.baddbmm(w[pre + "mlp_in_b"].unsqueeze(1), flat_hq, w[pre + "mlp_in"]))
        out = torch.baddbmm(w[pre + "mlp_out_b"].unsqueeze(1), hidden, w[pre + "mlp_out"])
        return hq + out.view(m, b, tq, d)
