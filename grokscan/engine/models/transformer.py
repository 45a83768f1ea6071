"""Decoder-only transformer as Nanda et al. 2023 ("Progress measures for grokking via mechanistic
interpretability"): no LayerNorm, learned positions, causal attention, 1 layer of d_model 128, 4 heads,
d_mlp 512 by default, the answer read at a final "=" token. Init: N(0, 1/d_model) weights, zero biases,
unembed N(0, 1/n_classes).

Power et al. 2022's transformer (openai/grok grok/transformer.py, commit 3d64b1d) is depth=2 with:
- layernorm="post": LayerNorm(x + sublayer(x)) after attention and after the MLP, learnable gain (init 1)
  and bias (init 0), eps 1e-5, no final LayerNorm (transformer.py:214, 218, 230, 234; nn.LayerNorm's
  defaults). "pre" is x + sublayer(LayerNorm(x)) with a final LayerNorm before the unembedding (GPT-2).
- biases="off": no bias in any linear layer (transformer.py:89-91, 142, 192, 194, 318); LayerNorm keeps its.
- pos_encoding="sinusoidal": a fixed table, sin(pos / 10000^(i/d)) at even i and cos(pos / 10000^((i-1)/d))
  at odd i, added to the token embedding (transformer.py:304-306, 325-339, 341-347).
- input_format="eos_x_op_y": the sequence "<eos> x op y =" (grok/data.py:250, 357; the model reads the
  text without its last token, data.py:469), the answer read at "=" (training.py:301-307). x, y are the
  operands, op one token for the task's operation.
Not expressed: Power's init (PyTorch's defaults), its softmax over the whole vocabulary rather than the
answers, and its second target (the <eos> after the answer, training.py:306-314).

Lee et al. 2024's transformer (Grokfast; ironjr/grokfast main.py, commit 93b2248) is depth=2,
activation="gelu" with:
- layernorm="pre_stream": the residual stream itself is normalized before attention and goes on normalized,
  x = LN1(x); x = x + attn(x); x = x + mlp(LN2(x)), then a final LayerNorm (main.py:38-42, 59, 66).
- biases="all": the MLP's biases and nn.MultiheadAttention's q, k, v and output biases (zero at init, as
  nn.MultiheadAttention initializes them); the unembedding has none (main.py:24-28, 60).
- input_format="x_op_y": the sequence "x op y =", the answer read at "=" (main.py:85-86, 152-154).
Not expressed: Lee's init (PyTorch's defaults) and softmax over all p + 2 tokens.

Sequence tasks (`Dims.n_outputs` = A) bring their own separators: no "=" is appended, and the last A
positions are read out (next-token logits [M, B, A, C], teacher forcing). d_mlp=0 drops the MLP sublayer
and its biases: an attention-only transformer (TransformerLens's attn_only; Olsson et al. 2022, "In-context
Learning and Induction Heads"), e.g. Nanda & Lieberum 2022's 2-layer one on repeated subsequences."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from grokscan.config import RunConfig
from grokscan.engine.models.layout import Architecture, Model, Spec, embed, linear
from grokscan.registry import ACTIVATIONS, MODELS, TASKS, cfg_error
from grokscan.tasks.base import Dims

MAX_DEPTH = 2
LN_EPS = 1e-5  # torch.nn.LayerNorm's default, which openai/grok uses
# Each option's allowed values; the first reproduces the transformer before the option existed (stored None).
OPTIONS = {
    "layernorm": ("none", "post", "pre", "pre_stream"),
    "biases": ("on", "off", "all"),
    "pos_encoding": ("learned", "sinusoidal"),
    "input_format": ("x_y", "eos_x_op_y", "x_op_y"),
}
FINAL_NORM = ("pre", "pre_stream")  # placements with a LayerNorm before the unembedding


class Transformer(Architecture):
    name = "transformer"
    fields = ("width", "depth", "heads", "d_mlp", *OPTIONS)
    default_width = 128

    def validate(self, cfg: RunConfig) -> None:
        dims = TASKS.get(cfg.task).dims(cfg)
        if dims.n_vocab is None:
            raise cfg_error("model", cfg.model, f"task {cfg.task!r} has pixel inputs; use model='mlp'")
        if cfg.depth > MAX_DEPTH:
            raise cfg_error("depth", cfg.depth, f"the transformer has 1 to {MAX_DEPTH} layers")
        if cfg.heads is None or cfg.heads < 1 or cfg.width % cfg.heads:
            raise cfg_error("heads", cfg.heads, f"must be >= 1 and divide width ({cfg.width})")
        if cfg.d_mlp is not None and cfg.d_mlp < 0:
            raise cfg_error("d_mlp", cfg.d_mlp, "must be >= 1, 0 for attention-only, or None for 4 * width")
        for name, allowed in OPTIONS.items():
            if getattr(cfg, name) not in (None, *allowed):
                raise cfg_error(name, getattr(cfg, name), f"one of {', '.join(map(repr, allowed))} or None")
        if cfg.input_format not in (None, "x_y") and (dims.n_outputs is not None or dims.n_inputs != 2):
            raise cfg_error(
                "input_format", cfg.input_format, f"needs a binary operation; {cfg.task!r} is not"
            )

    def normalize(self, cfg: RunConfig) -> dict:
        out = {
            name: None if getattr(cfg, name) == allowed[0] else getattr(cfg, name)
            for name, allowed in OPTIONS.items()
        }
        if cfg.d_mlp == 0 and out["biases"] == "off":  # attention-only: no MLP, so no biases to drop
            out["biases"] = None
        return {"d_mlp": 4 * cfg.width if cfg.d_mlp is None else cfg.d_mlp, **out}

    def spec(self, cfg: RunConfig, dims: Dims) -> Spec:
        d, d_mlp, std = cfg.width, cfg.d_mlp, 1 / math.sqrt(cfg.width)
        spec: Spec = {"embed": ((dims.n_vocab + _extra_tokens(cfg, dims), d), ("normal", std))}
        if cfg.pos_encoding is None:  # learned
            spec["pos"] = ((_n_tokens(cfg, dims), d), ("normal", std))
        for layer in range(cfg.depth):
            for name in ("q", "k", "v", "o"):
                spec[f"l{layer}.{name}"] = ((d, d), ("normal", std))
                if cfg.biases == "all":
                    spec[f"l{layer}.{name}_b"] = ((d,), ("zeros", 0.0))
            if cfg.layernorm is not None:
                spec.update(_norm_spec(f"l{layer}.ln1", d))
            if d_mlp == 0:  # attention-only
                continue
            spec[f"l{layer}.mlp_in"] = ((d, d_mlp), ("normal", std))
            if cfg.biases != "off":
                spec[f"l{layer}.mlp_in_b"] = ((d_mlp,), ("zeros", 0.0))
            spec[f"l{layer}.mlp_out"] = ((d_mlp, d), ("normal", std))
            if cfg.biases != "off":
                spec[f"l{layer}.mlp_out_b"] = ((d,), ("zeros", 0.0))
            if cfg.layernorm is not None:
                spec.update(_norm_spec(f"l{layer}.ln2", d))
        if cfg.layernorm in FINAL_NORM:
            spec.update(_norm_spec("ln_f", d))
        spec["unembed"] = ((d, dims.n_classes), ("normal", 1 / math.sqrt(dims.n_classes)))
        return spec

    def forward(self, model: Model, w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Logits [M, B, C] at an appended "=" (tables), or [M, B, A, C] at the last A positions."""
        m, b, t = x.shape
        cfg, n_out = model.cfg, model.dims.n_outputs
        if n_out is None:
            x = _table_sequence(x, model.n_vocab, cfg.input_format)
        h = embed(w["embed"], x)  # [M, B, T, d]
        if cfg.pos_encoding is None:
            h = h + w["pos"].unsqueeze(1)
        else:
            h = h + sinusoidal(x.shape[2], cfg.width, h.dtype, h.device)
        depth, read = cfg.depth, n_out or 1
        for layer in range(depth):
            last = layer == depth - 1  # the answer is read at the last `read` positions only
            h = _block(model, w, f"l{layer}.", h, h[:, :, -read:] if last else h)
        if cfg.layernorm in FINAL_NORM:
            h = _norm(w, "ln_f", h)
        if n_out is None:
            return torch.bmm(h[:, :, -1], w["unembed"])
        return torch.bmm(h.reshape(m, b * read, -1), w["unembed"]).view(m, b, read, -1)

    def row_elements(self, cfg: RunConfig, dims: Dims) -> tuple[int, int]:
        read = dims.n_outputs or 1  # positions read out
        w, c, act = cfg.width, dims.n_classes * read, ACTIVATIONS.get(cfg.activation)
        t = _n_tokens(cfg, dims)
        saved, made, widest = c, 2 * t * w + 2 * c, t * w  # log-probabilities; embeddings, logits
        for layer in range(cfg.depth):
            tq = read if layer == cfg.depth - 1 else t  # the last layer computes the read-out positions only
            # Saved: input, query (+ its slice), key, value, attention, z, residual, MLP hidden, last output.
            # Made: q, k, v and matmul's copies; scores, scaled, masked, softmax; z, copy, o, 2 residuals, MLP
            saved += (t + (tq < t) * tq + tq + 2 * t + 2 * tq + (layer == cfg.depth - 1) * tq) * w
            saved += cfg.heads * tq * t + act.saved * tq * cfg.d_mlp
            made += 2 * (tq + 2 * t) * w + 4 * cfg.heads * tq * t + 5 * tq * w + act.made * tq * cfg.d_mlp
            widest = max(widest, tq * cfg.d_mlp)
            if cfg.layernorm is not None:  # LayerNorm rows: pre-LN normalizes every key position
                rows = (t if cfg.layernorm in FINAL_NORM else tq) + (tq if cfg.d_mlp else 0)
                saved, made = saved + rows * (2 * w + 2), made + rows * (2 * w + 2)
        if cfg.layernorm in FINAL_NORM:  # the final LayerNorm
            saved, made = saved + read * (2 * w + 2), made + read * (2 * w + 2)
        return saved + 2 * c + 2 * widest, made


def _extra_tokens(cfg: RunConfig, dims: Dims) -> int:
    """Token ids past the task's vocabulary: "=" (id n_vocab), then op (x_op_y) and <eos> (eos_x_op_y)."""
    if dims.n_outputs is not None:
        return 0
    return {None: 1, "x_op_y": 2, "eos_x_op_y": 3}[cfg.input_format]


def _n_tokens(cfg: RunConfig, dims: Dims) -> int:
    """Positions the model sees: the task's inputs and the tokens added around them."""
    return dims.n_inputs + _extra_tokens(cfg, dims)


def _table_sequence(x: torch.Tensor, n_vocab: int, input_format: str | None) -> torch.Tensor:
    """Token ids [M, B, T] for operand ids x [M, B, 2]: "x y =", "x op y =" (ironjr/grokfast main.py) or
    "<eos> x op y =" (openai/grok data.py)."""

    def const(token: int) -> torch.Tensor:
        return torch.full((*x.shape[:2], 1), token, dtype=x.dtype, device=x.device)

    eq = const(n_vocab)
    if input_format is None:
        return torch.cat([x, eq], 2)
    x_op_y = [x[:, :, :1], const(n_vocab + 1), x[:, :, 1:], eq]
    return torch.cat(x_op_y if input_format == "x_op_y" else [const(n_vocab + 2), *x_op_y], 2)


@functools.lru_cache(maxsize=16)  # built once per shape and device, not copied to the device every step
def sinusoidal(n_pos: int, d: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """openai/grok's position table [n_pos, d] (transformer.py:325-339), computed in float64 on the CPU as
    there, so every device adds the same values. Read-only: the cached tensor is shared."""
    pos = torch.arange(n_pos, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(d)
    angle = pos / 10000 ** ((i - i % 2).to(torch.float64) / d)  # odd i use the exponent of i - 1
    return torch.where(i % 2 == 0, angle.sin(), angle.cos()).to(dtype=dtype, device=device)


def _norm_spec(name: str, d: int) -> Spec:
    return {f"{name}_w": ((d,), ("ones", 1.0)), f"{name}_b": ((d,), ("zeros", 0.0))}


def _norm(w: dict[str, torch.Tensor], name: str, h: torch.Tensor) -> torch.Tensor:
    """LayerNorm over d with each member's own gain and bias ([M, d]) on h [M, B, T, d]."""
    m = h.shape[0]
    gain, bias = w[name + "_w"].view(m, 1, 1, -1), w[name + "_b"].view(m, 1, 1, -1)
    return torch.addcmul(bias, F.layer_norm(h, h.shape[-1:], eps=LN_EPS), gain)


def _block(
    model: Model, w: dict[str, torch.Tensor], pre: str, h: torch.Tensor, hq: torch.Tensor
) -> torch.Tensor:
    """One layer on residual stream h [M, B, T, d], computed at the positions of hq (the last tq of h)."""
    m, b, t, d = h.shape
    tq, heads, norm = hq.shape[2], model.cfg.heads, model.cfg.layernorm
    dh = d // heads

    def project(inp: torch.Tensor, name: str) -> torch.Tensor:  # -> [M, B, heads, T, dh]
        out = linear(inp.reshape(m, -1, d), w[pre + name], w.get(pre + name + "_b"))
        return out.view(m, b, inp.shape[2], heads, dh).transpose(2, 3)

    if norm == "pre_stream":  # the stream goes on normalized (Lee et al. 2024)
        h = _norm(w, pre + "ln1", h)
        hq = h[:, :, -tq:] if tq < t else h
    src, src_q = h, hq
    if norm == "pre":
        src = _norm(w, pre + "ln1", h)
        src_q = src[:, :, -tq:] if tq < t else src
    q, k, v = project(src_q, "q"), project(src, "k"), project(src, "v")
    scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
    query_pos = torch.arange(t - tq, t, device=h.device)
    causal = torch.arange(t, device=h.device)[None, :] > query_pos[:, None]
    attn = scores.masked_fill(causal, float("-inf")).softmax(-1)
    z = (attn @ v).transpose(2, 3).reshape(m, b * tq, d)
    hq = hq + linear(z, w[pre + "o"], w.get(pre + "o_b")).view(m, b, tq, d)
    if norm == "post":
        hq = _norm(w, pre + "ln1", hq)
    if model.cfg.d_mlp == 0:  # attention-only
        return hq
    mlp_in = _norm(w, pre + "ln2", hq) if norm in FINAL_NORM else hq
    hidden = model.act(linear(mlp_in.reshape(m, b * tq, d), w[pre + "mlp_in"], w.get(pre + "mlp_in_b")))
    out = linear(hidden, w[pre + "mlp_out"], w.get(pre + "mlp_out_b"))
    hq = hq + out.view(m, b, tq, d)
    return _norm(w, pre + "ln2", hq) if norm == "post" else hq


MODELS.register(Transformer())
