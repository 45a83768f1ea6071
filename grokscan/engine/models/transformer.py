"""Decoder-only transformer as Nanda et al. 2023 ("Progress measures for grokking via mechanistic
interpretability"): no LayerNorm, learned positions, causal attention, 1 layer of d_model 128, 4 heads,
d_mlp 512 by default (depth=2 gives Power et al. 2022's size), the answer read at a final "=" token. Init:
N(0, 1/d_model) weights, zero biases, unembed N(0, 1/n_classes).

Sequence tasks (`Dims.n_outputs` = A) bring their own separators: no "=" is appended, and the last A
positions are read out (next-token logits [M, B, A, C], teacher forcing). d_mlp=0 drops the MLP sublayer
and its biases: an attention-only transformer (TransformerLens's attn_only; Olsson et al. 2022, "In-context
Learning and Induction Heads"), e.g. Nanda & Lieberum 2022's 2-layer one on repeated subsequences."""

from __future__ import annotations

import math

import torch

from grokscan.config import RunConfig
from grokscan.engine.models.layout import Architecture, Model, Spec, embed
from grokscan.registry import ACTIVATIONS, MODELS, TASKS, cfg_error
from grokscan.tasks.base import Dims

MAX_DEPTH = 2


class Transformer(Architecture):
    name = "transformer"
    fields = ("width", "depth", "heads", "d_mlp")
    default_width = 128

    def validate(self, cfg: RunConfig) -> None:
        if TASKS.get(cfg.task).dims(cfg).n_vocab is None:
            raise cfg_error("model", cfg.model, f"task {cfg.task!r} has pixel inputs; use model='mlp'")
        if cfg.depth > MAX_DEPTH:
            raise cfg_error("depth", cfg.depth, f"the transformer has 1 to {MAX_DEPTH} layers")
        if cfg.heads is None or cfg.heads < 1 or cfg.width % cfg.heads:
            raise cfg_error("heads", cfg.heads, f"must be >= 1 and divide width ({cfg.width})")
        if cfg.d_mlp is not None and cfg.d_mlp < 0:
            raise cfg_error("d_mlp", cfg.d_mlp, "must be >= 1, 0 for attention-only, or None for 4 * width")

    def normalize(self, cfg: RunConfig) -> dict:
        return {"d_mlp": 4 * cfg.width if cfg.d_mlp is None else cfg.d_mlp}

    def spec(self, cfg: RunConfig, dims: Dims) -> Spec:
        d, d_mlp, std = cfg.width, cfg.d_mlp, 1 / math.sqrt(cfg.width)
        eq = int(dims.n_outputs is None)  # tables: +1 for the "=" token read out last
        spec: Spec = {
            "embed": ((dims.n_vocab + eq, d), ("normal", std)),
            "pos": ((dims.n_inputs + eq, d), ("normal", std)),
        }
        for layer in range(cfg.depth):
            for name in ("q", "k", "v", "o"):
                spec[f"l{layer}.{name}"] = ((d, d), ("normal", std))
            if d_mlp == 0:  # attention-only
                continue
            spec[f"l{layer}.mlp_in"] = ((d, d_mlp), ("normal", std))
            spec[f"l{layer}.mlp_in_b"] = ((d_mlp,), ("zeros", 0.0))
            spec[f"l{layer}.mlp_out"] = ((d_mlp, d), ("normal", std))
            spec[f"l{layer}.mlp_out_b"] = ((d,), ("zeros", 0.0))
        spec["unembed"] = ((d, dims.n_classes), ("normal", 1 / math.sqrt(dims.n_classes)))
        return spec

    def forward(self, model: Model, w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Logits [M, B, C] at an appended "=" (tables), or [M, B, A, C] at the last A positions."""
        m, b, t = x.shape
        n_out = model.dims.n_outputs
        if n_out is None:
            eq = torch.full((m, b, 1), model.n_vocab, dtype=x.dtype, device=x.device)
            x = torch.cat([x, eq], 2)
        h = embed(w["embed"], x) + w["pos"].unsqueeze(1)  # [M, B, T, d]
        depth, read = model.cfg.depth, n_out or 1
        for layer in range(depth):
            last = layer == depth - 1  # the answer is read at the last `read` positions only
            h = _block(model, w, f"l{layer}.", h, h[:, :, -read:] if last else h)
        if n_out is None:
            return torch.bmm(h[:, :, -1], w["unembed"])
        return torch.bmm(h.reshape(m, b * read, -1), w["unembed"]).view(m, b, read, -1)

    def row_elements(self, cfg: RunConfig, dims: Dims) -> tuple[int, int]:
        read = dims.n_outputs or 1  # positions read out
        w, c, act = cfg.width, dims.n_classes * read, ACTIVATIONS.get(cfg.activation)
        t = dims.n_inputs + int(dims.n_outputs is None)  # tokens (and "=")
        saved, made, widest = c, 2 * t * w + 2 * c, t * w  # log-probabilities; embeddings, logits
        for layer in range(cfg.depth):
            tq = read if layer == cfg.depth - 1 else t  # the last layer computes the read-out positions only
            # Saved: input, query (+ its slice), key, value, attention, z, residual, MLP hidden, last output.
            # Made: q, k, v and matmul's copies; scores, scaled, masked, softmax; z, copy, o, 2 residuals, MLP
            saved += (t + (tq < t) * tq + tq + 2 * t + 2 * tq + (layer == cfg.depth - 1) * tq) * w
            saved += cfg.heads * tq * t + act.saved * tq * cfg.d_mlp
            made += 2 * (tq + 2 * t) * w + 4 * cfg.heads * tq * t + 5 * tq * w + act.made * tq * cfg.d_mlp
            widest = max(widest, tq * cfg.d_mlp)
        return saved + 2 * c + 2 * widest, made


def _block(
    model: Model, w: dict[str, torch.Tensor], pre: str, h: torch.Tensor, hq: torch.Tensor
) -> torch.Tensor:
    m, b, t, d = h.shape
    tq, heads = hq.shape[2], model.cfg.heads
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
    if model.cfg.d_mlp == 0:  # attention-only
        return hq
    flat_hq = hq.reshape(m, b * tq, d)
    hidden = model.act(torch.baddbmm(w[pre + "mlp_in_b"].unsqueeze(1), flat_hq, w[pre + "mlp_in"]))
    out = torch.baddbmm(w[pre + "mlp_out_b"].unsqueeze(1), hidden, w[pre + "mlp_out"])
    return hq + out.view(m, b, tq, d)


MODELS.register(Transformer())
