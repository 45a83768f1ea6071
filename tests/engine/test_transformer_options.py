"""The transformer's options for Power et al. 2022's model (layernorm, biases, pos_encoding, input_format)
against a per-member re-implementation of openai/grok's transformer (grok/transformer.py at commit
3d64b1d, lines cited below) in plain torch, and for Lee et al. 2024's against their Block and Decoder
(ironjr/grokfast main.py at 93b2248) built from torch.nn modules; run identity and validation of the
options; members stay independent of their pack."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from grokscan.config import RunConfig
from grokscan.engine.models import Model
from grokscan.engine.models.transformer import sinusoidal
from grokscan.errors import UserError
from grokscan.registry import TASKS

POWER = dict(layernorm="post", biases="off", pos_encoding="sinusoidal", input_format="eos_x_op_y")
LEE = dict(layernorm="pre_stream", biases="all", input_format="x_op_y", activation="gelu")
TINY = dict(task="x-y", p=7, model="transformer", width=8, heads=2, d_mlp=12, depth=2)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/engine/conftest.py


def _power_position_encoding(context_len: int, d_model: int) -> np.ndarray:
    """openai/grok transformer.py:325-339, the same expression in numpy."""
    return np.array(
        [
            [
                np.sin(pos / (10000 ** (i / d_model)))
                if i % 2 == 0
                else np.cos(pos / (10000 ** ((i - 1) / d_model)))
                for i in range(d_model)
            ]
            for pos in range(context_len)
        ]
    )


def test_sinusoidal_table_is_openai_grok_formula() -> None:
    for n_pos, d in ((5, 8), (50, 128)):
        got = sinusoidal(n_pos, d, torch.float64)
        assert_close(got, torch.from_numpy(_power_position_encoding(n_pos, d)), rtol=0, atol=1e-15)
    assert sinusoidal(5, 8, torch.float32).dtype == torch.float32


def _layer_norm(x: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    ln = torch.nn.LayerNorm(x.shape[-1], dtype=x.dtype)  # openai/grok transformer.py:37-56: nn.LayerNorm
    with torch.no_grad():
        ln.weight.copy_(gain)
        ln.bias.copy_(bias)
    return ln(x)


def _attention(w: dict, inp: torch.Tensor, heads: int, mask: torch.Tensor) -> torch.Tensor:
    """transformer.py:81-174: one head at a time, their outputs concatenated, then Wo."""
    d = inp.shape[-1]
    dk, outs = d // heads, []
    for k in range(heads):
        cols = slice(k * dk, (k + 1) * dk)
        q, key, v = (F.linear(inp, w[n][:, cols].T) for n in ("q", "k", "v"))
        a = (q @ key.transpose(-2, -1)) / math.sqrt(dk)
        outs.append(a.masked_fill(mask == 0, float("-inf")).softmax(-1) @ v)
    return F.linear(torch.cat(outs, -1), w["o"].T)


def _ffn(w: dict, inp: torch.Tensor) -> torch.Tensor:  # transformer.py:177-198
    hidden = F.linear(inp, w["mlp_in"].T, w.get("mlp_in_b")).relu()
    return F.linear(hidden, w["mlp_out"].T, w.get("mlp_out_b"))


def _ln(w: dict, name: str, inp: torch.Tensor) -> torch.Tensor:
    return _layer_norm(inp, w[name + "_w"], w[name + "_b"])


def _reference(cfg: RunConfig, w: dict[str, torch.Tensor], x: torch.Tensor, n_vocab: int) -> torch.Tensor:
    """One member's logits at "=" for operand pairs x [B, 2], written as openai/grok writes its model."""
    eq, op, eos = n_vocab, n_vocab + 1, n_vocab + 2
    if cfg.input_format == "eos_x_op_y":  # data.py:250, 357 "<eos> x op y = c <eos>", text = [:-1]
        tokens = [[eos, int(a), op, int(b), eq] for a, b in x]
    else:
        tokens = [[int(a), int(b), eq] for a, b in x]
    tokens = torch.tensor(tokens)
    t, d, heads = tokens.shape[1], cfg.width, cfg.heads
    h = F.embedding(tokens, w["embed"])
    if cfg.pos_encoding == "sinusoidal":  # transformer.py:341-347
        h = h + torch.from_numpy(_power_position_encoding(t, d)).to(h.dtype)
    else:
        h = h + w["pos"]
    mask = torch.ones(t, t).tril()  # transformer.py:321-322
    for layer in range(cfg.depth):
        lw = {k.split(".", 1)[1]: v for k, v in w.items() if k.startswith(f"l{layer}.")}
        if cfg.layernorm == "post":  # DecoderBlock.forward, transformer.py:226-234
            h = _ln(lw, "ln1", h + _attention(lw, h, heads, mask))
            h = _ln(lw, "ln2", h + _ffn(lw, h))
        elif cfg.layernorm == "pre":  # GPT-2's order
            h = h + _attention(lw, _ln(lw, "ln1", h), heads, mask)
            h = h + _ffn(lw, _ln(lw, "ln2", h))
        else:
            h = h + _attention(lw, h, heads, mask)
            h = h + _ffn(lw, h)
    if cfg.layernorm == "pre":
        h = _layer_norm(h, w["ln_f_w"], w["ln_f_b"])
    return h[:, -1] @ w["unembed"]  # the position of "=" (training.py:301-307)


@pytest.mark.parametrize(
    "options",
    [POWER, dict(POWER, biases=None), dict(layernorm="pre"), dict(input_format="eos_x_op_y"), {}],
    ids=["power", "power-with-biases", "pre", "eos_x_op_y", "default"],
)
def test_forward_matches_openai_grok_reference(options: dict) -> None:
    _assert_matches(RunConfig(**TINY, **options), _reference)


def _assert_matches(cfg: RunConfig, reference) -> Model:
    """Three members' logits against `reference`, one member at a time, to 1e-12 in float64."""
    dims = TASKS.get(cfg.task).dims(cfg)
    net = Model(cfg, dims)
    flat = torch.randn(3, net.n_params, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = TASKS.get(cfg.task).table(cfg).x[:10]
    logits = net.forward(flat, x.expand(3, *x.shape))
    views = net.views(flat)
    for i in range(3):
        want = reference(cfg, {k: v[i] for k, v in views.items()}, x, dims.n_vocab)
        assert_close(logits[i], want, rtol=1e-12, atol=1e-12)
    return net


def _lee_reference(cfg: RunConfig, w: dict[str, torch.Tensor], x: torch.Tensor, n_vocab: int) -> torch.Tensor:
    """One member's logits at "=", as ironjr/grokfast main.py computes them: tokens "x op y =" (85-86),
    learned positions (49, 57-58), each Block (20-41) with nn.MultiheadAttention, final LayerNorm (59, 65)
    and an unembedding without bias (60). Their sequence-first layout is batch_first=False; same sums."""
    eq, op = n_vocab, n_vocab + 1
    tokens = torch.tensor([[int(a), op, int(b), eq] for a, b in x])
    t, d = tokens.shape[1], cfg.width
    h = F.embedding(tokens, w["embed"]) + w["pos"]
    mask = torch.full((t, t), -float("inf"), dtype=h.dtype).triu(1)  # main.py:31-34
    for layer in range(cfg.depth):
        lw = {k.split(".", 1)[1]: v for k, v in w.items() if k.startswith(f"l{layer}.")}
        attn = torch.nn.MultiheadAttention(d, cfg.heads, batch_first=True, dtype=h.dtype)
        with torch.no_grad():  # nn.Linear computes x W^T: grokscan's [in, out] weights, transposed
            attn.in_proj_weight.copy_(torch.cat([lw[n].T for n in ("q", "k", "v")]))
            attn.in_proj_bias.copy_(torch.cat([lw[n + "_b"] for n in ("q", "k", "v")]))
            attn.out_proj.weight.copy_(lw["o"].T)
            attn.out_proj.bias.copy_(lw["o_b"])
        h = _ln(lw, "ln1", h)  # main.py:36: x = self.ln_1(x)
        h = h + attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        hidden = F.gelu(F.linear(_ln(lw, "ln2", h), lw["mlp_in"].T, lw["mlp_in_b"]))
        h = h + F.linear(hidden, lw["mlp_out"].T, lw["mlp_out_b"])
    h = _layer_norm(h, w["ln_f_w"], w["ln_f_b"])
    return h[:, -1] @ w["unembed"]


def test_forward_matches_grokfast_reference() -> None:
    net = _assert_matches(RunConfig(**TINY, **LEE), _lee_reference)
    assert net.spec["embed"][0] == (7 + 2, 8)  # operands, "=", op
    assert {"l0.q_b", "l1.o_b", "ln_f_w"} <= set(net.spec)


def _model(**options) -> Model:
    cfg = RunConfig(**TINY, **options)
    return Model(cfg, TASKS.get(cfg.task).dims(cfg))


def test_parameters_of_each_option() -> None:
    def names(**options) -> set[str]:
        return set(_model(**options).spec)

    base = names()
    assert base - names(biases="off") == {f"l{i}.mlp_{s}_b" for i in (0, 1) for s in ("in", "out")}
    assert base - names(pos_encoding="sinusoidal") == {"pos"}
    ln = {f"l{i}.ln{j}_{s}" for i in (0, 1) for j in (1, 2) for s in "wb"}
    assert names(layernorm="post") - base == ln
    assert names(layernorm="pre") - base == ln | {"ln_f_w", "ln_f_b"}
    net = _model(**POWER)
    assert net.spec["embed"][0] == (7 + 3, 8)  # operands, "=", op, <eos>
    views = net.views(net.init_member(0, 1.0, torch.float64).unsqueeze(0))
    assert torch.equal(views["l0.ln1_w"], torch.ones(1, 8, dtype=torch.float64))  # nn.LayerNorm's init
    assert torch.equal(views["l0.ln1_b"], torch.zeros(1, 8, dtype=torch.float64))


def test_options_identity_and_defaults() -> None:
    default = RunConfig(**TINY)
    spelled = RunConfig(**TINY, layernorm="none", biases="on", pos_encoding="learned", input_format="x_y")
    assert spelled.run_id == default.run_id and spelled == default
    ids = {RunConfig(**TINY, **{k: v}).run_id for k, v in POWER.items()} | {default.run_id}
    assert len(ids) == len(POWER) + 1
    assert RunConfig(**TINY, layernorm="pre").run_id != RunConfig(**TINY, layernorm="post").run_id
    attn_only = dict(TINY, d_mlp=0)
    assert RunConfig(**attn_only, biases="off").run_id == RunConfig(**attn_only).run_id  # nothing to drop
    assert RunConfig(**dict(TINY, model="mlp"), layernorm="post").layernorm is None  # not the mlp's field


@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(layernorm="after"), r"'layernorm' = 'after'.*'none', 'post', 'pre', 'pre_stream'"),
        (dict(input_format="x_op_y", task="parity", n_bits=6, k_bits=2, n_samples=None), r"binary"),
        (dict(biases=True), r"'biases' = True.*must be a string"),
        (dict(biases="no"), r"'biases' = 'no'.*'on', 'off'"),
        (dict(pos_encoding="rope"), r"'pos_encoding' = 'rope'.*'learned', 'sinusoidal'"),
        (dict(input_format="eos_x_op_y", task="parity", n_bits=6, k_bits=2, n_samples=None), r"binary"),
        (dict(input_format="eos_x_op_y", task="max_of_seq"), r"'input_format'.*binary"),
    ],
)
def test_bad_option_values(overrides: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        RunConfig(**{**TINY, **overrides})


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "options", [POWER, dict(layernorm="pre", pos_encoding="sinusoidal"), LEE], ids=["power", "pre", "lee"]
)
def test_member_forward_and_grad_equal_alone(options: dict, dtype: torch.dtype) -> None:
    """Bitwise on one CPU thread, as tests/engine/test_models.py checks the default transformer."""
    cfg = RunConfig(**{**TINY, "width": 6, "d_mlp": 10}, **options)
    net = Model(cfg, TASKS.get(cfg.task).dims(cfg))
    data = TASKS.get(cfg.task).table(cfg)
    x, labels = data.x[:10], data.y[:10]
    flat = torch.stack([net.init_member(seed, 1.0, dtype) for seed in range(20)])
    flat = (flat + 0.1 * torch.randn(flat.shape, dtype=dtype)).requires_grad_(True)  # gains away from 1

    def losses(logits: torch.Tensor) -> torch.Tensor:
        target = labels.expand(len(logits), -1)
        return F.cross_entropy(logits.transpose(1, 2), target, reduction="none").mean(1)

    packed = net.forward(flat, x.expand(len(flat), *x.shape))
    (grad,) = torch.autograd.grad(losses(packed).sum(), flat)
    for i in (0, 7, 19):
        alone = flat[i : i + 1].detach().requires_grad_(True)
        logits = net.forward(alone, x.unsqueeze(0))
        (g,) = torch.autograd.grad(losses(logits).sum(), alone)
        assert torch.equal(logits[0], packed[i].detach())
        assert torch.equal(g[0], grad[i])
