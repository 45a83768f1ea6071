"""Pack invariance: a run trained alone or in a pack (of 8, 9 or 64, full or minibatch, with chunked eval)
gives the same result. The helpers here are shared with test_loop.py."""

from __future__ import annotations

import math

import pytest
import torch

from grokscan.config import RunConfig
from grokscan.engine import memory
from grokscan.engine.loop import train_runs
from grokscan.engine.models import Model
from grokscan.engine.packing import pack_key
from grokscan.result import RunResult

PARITY = dict(task="parity", n_bits=8, k_bits=2, n_samples=None, width=16, eval_every=10)
COLUMNS = ("train_acc", "val_acc", "train_loss", "val_loss", "weight_norm", "zero_loss_frac")


def columns(cfg: RunConfig) -> tuple[str, ...]:
    """The curve columns of a run: every one of COLUMNS, but zero_loss_frac only for losses other than mse."""
    return tuple(c for c in COLUMNS if not (c == "zero_loss_frac" and cfg.loss == "mse"))


def mixed(base: dict, n: int = 9, fracs: tuple[float, float] = (0.5, 0.499)) -> list[RunConfig]:
    """n configs of one pack shape that differ in seed, split_seed, frac, lr, weight_decay, alpha,
    label_noise, warmup, steps and patience."""
    out = []
    for i in range(n):
        out.append(
            RunConfig(
                **base,
                seed=i,
                split_seed=100 + i % 4,
                frac=fracs[i % 2],  # default: same n_train on 256, 128, 121, 49 or 36 rows
                lr=(1e-2, 3e-3, 2e-2)[i % 3],
                weight_decay=(0.0, 1.0, 0.3)[i % 3],
                alpha=(1.0, 1.5, 0.7, 1.0)[i % 4],
                label_noise=(0.0, 0.05, 0.0)[i % 3],
                warmup=(5, 0)[i % 2],
                steps=(60, 50, 60)[i % 3],
                patience=(2, 1)[i % 2],
            )
        )
    assert len({pack_key(c) for c in out}) == 1
    return out


def _same(x: float, y: float) -> bool:
    return x == y or (math.isnan(x) and math.isnan(y))


def assert_identical(a: RunResult, b: RunResult) -> None:
    """Bit-identical outcome (NaN equals NaN: a diverged run's metrics can be NaN)."""
    assert a.config == b.config
    assert outcome(a) == outcome(b) and a.error == b.error
    assert a.curves.keys() == b.curves.keys() and a.final.keys() == b.final.keys()
    for key in a.curves:
        assert len(a.curves[key]) == len(b.curves[key]), key
        assert all(map(_same, a.curves[key], b.curves[key])), key
    assert all(_same(a.final[k], b.final[k]) for k in columns(a.config))


def outcome(r: RunResult) -> tuple:
    return r.status, r.step_fit, r.step_gen, r.steps_run


def assert_close(a: RunResult, b: RunResult, rtol: float, atol: float) -> None:
    assert outcome(a) == outcome(b)
    for key in ("step", *columns(b.config)):
        want = torch.tensor(b.curves[key], dtype=torch.float64)
        torch.testing.assert_close(
            torch.tensor(a.curves[key], dtype=torch.float64),
            want,
            rtol=rtol,
            atol=atol,
            equal_nan=True,
            msg=key,
        )


@pytest.mark.parametrize(
    "base",
    [
        PARITY,
        dict(task="x*y", p=11, width=16, eval_every=10),
        dict(
            task="x-y",
            p=11,
            width=16,
            eval_every=10,
            optimizer="sgd",
            momentum=0.9,
            loss="mse",
            grad_filter="perp",
            activation="gelu",
            depth=2,
        ),
        dict(task="s3", width=16, eval_every=10, optimizer="adam", loss="stablemax", grad_filter="grokfast"),
        dict(task="x+y", p=11, width=16, depth=2, eval_every=10, mlp_input="onehot", biases="off"),
        dict(
            **dict(task="x+y", p=11, width=16, eval_every=10, mlp_input="embed_sum", embed_dim=1),
            **dict(activation="tanh", embed_lr=1e-3, embed_weight_decay=0.0),
        ),
        dict(
            **dict(task="x-y", p=11, model="transformer", width=8, heads=2, d_mlp=12, depth=2, eval_every=10),
            **dict(layernorm="post", biases="off", pos_encoding="sinusoidal", input_format="eos_x_op_y"),
        ),
        dict(task="s3", model="transformer", width=8, heads=2, depth=2, eval_every=10, layernorm="pre"),
        dict(
            **dict(task="x*y", p=11, model="transformer", width=8, heads=2, d_mlp=12, depth=2, eval_every=10),
            **dict(layernorm="pre_stream", biases="all", input_format="x_op_y", activation="gelu"),
            **dict(optimizer="adam", grad_filter="grokfast"),
        ),
    ],
    ids=[
        "parity",
        "x*y",
        "sgd-mse-perp",
        "s3-adam-stablemax-grokfast",
        "mlp-onehot-prieto",
        "mlp-embed-sum-liu",
        "transformer-power",
        "transformer-pre",
        "transformer-lee",
    ],
)
def test_pack_invariance_float64(base: dict) -> None:
    """Invariant 1: alone or in a pack of 9, the same run gives bit-identical results (CPU, float64)."""
    configs = mixed({**base, "dtype": "float64"})
    packed = train_runs(configs)
    assert [r.pack_size for r in packed] == [9] * 9
    for cfg, r in zip(configs, packed, strict=True):
        alone = train_runs([cfg])[0]
        assert alone.pack_size == 1
        assert_identical(r, alone)
    if base is PARITY:  # members stop at different steps, so the pack really shrinks mid-run
        assert len({r.steps_run for r in packed}) >= 3
        assert any(r.step_fit is not None for r in packed) and any(r.step_fit is None for r in packed)
    if base.get("loss") == "mse":  # no zero_loss_frac column at all (it used to be NaN)
        assert all("zero_loss_frac" not in r.final and "zero_loss_frac" not in r.curves for r in packed)


@pytest.mark.parametrize(
    "base",
    [
        dict(task="parity", n_bits=7, k_bits=2, n_samples=None, width=10, eval_every=10, activation="gelu"),
        dict(
            task="x-y",
            p=7,
            width=9,
            eval_every=10,
            optimizer="adam",
            loss="stablemax",
            grad_filter="grokfast",
        ),
        dict(task="s3", model="transformer", width=6, heads=2, d_mlp=10, depth=2, eval_every=10),
    ],
    ids=["parity-gelu", "adam-stablemax-grokfast", "transformer"],
)
def test_pack_of_64_invariance(base: dict) -> None:
    """The design's pack of 64, with odd widths: past 16 members CPU kernels vectorize the pack's
    hyperparameter columns, and odd per-member sizes put a lone member's tail in scalar code."""
    configs = mixed({**base, "dtype": "float64"}, n=64)
    packed = train_runs(configs, pack_size=64)
    assert {r.pack_size for r in packed} == {64}
    for i in (0, 1, 17, 30, 63):
        assert_identical(packed[i], train_runs([configs[i]])[0])


FLOAT32_BASES = [
    PARITY,
    dict(task="x+y", p=11, width=16, eval_every=10),
    dict(task="s3", model="transformer", width=6, heads=2, d_mlp=10, depth=2, eval_every=10),
    dict(task="x-y", p=7, width=9, eval_every=10, optimizer="adam", loss="stablemax", grad_filter="grokfast"),
    dict(
        task="x*y",
        p=11,
        width=16,
        eval_every=10,
        optimizer="sgd",
        momentum=0.9,
        loss="mse",
        grad_filter="perp",
    ),
]


@pytest.mark.parametrize("n", [8, 64])
@pytest.mark.parametrize(
    "base", FLOAT32_BASES, ids=["parity", "x+y", "transformer", "adam-grokfast", "sgd-perp"]
)
def test_pack_invariance_float32_is_bitwise(base: dict, n: int) -> None:
    """The default dtype: alone or in a pack of 8 or 64, a run's curves are bit-identical on CPU."""
    configs = mixed({**base, "dtype": "float32"}, n=n)
    packed = train_runs(configs, pack_size=n)
    assert {r.pack_size for r in packed} == {n}
    for i in sorted({0, 1, 5, n - 1}):
        assert_identical(packed[i], train_runs([configs[i]])[0])


def test_pack_invariance_with_chunked_eval(monkeypatch) -> None:
    """Evaluation in uneven chunks of members gives the same results as one chunk."""
    configs = mixed({**PARITY, "dtype": "float64"}, n=8)
    whole = train_runs(configs)
    rows, widest = 256, 16 * 8
    monkeypatch.setattr(memory, "EVAL_ELEMENTS", rows * widest * 3)  # chunks of 3, 3, 2 members
    eval_sizes: set[int] = set()
    forward = Model.forward

    def spy(self, flat, x):
        if x.shape[1] == rows:
            eval_sizes.add(flat.shape[0])
        return forward(self, flat, x)

    monkeypatch.setattr(Model, "forward", spy)
    for a, b in zip(train_runs(configs), whole, strict=True):
        assert_identical(a, b)
    assert {3, 2} <= eval_sizes and max(eval_sizes) == 3


@pytest.mark.parametrize("batch_size", [32, 48])
def test_minibatch_pack_invariance(batch_size: int) -> None:
    configs = mixed({**PARITY, "dtype": "float64", "batch_size": batch_size}, n=8)
    packed = train_runs(configs)
    assert {r.pack_size for r in packed} == {8}
    for cfg, r in zip(configs, packed, strict=True):
        assert_identical(r, train_runs([cfg])[0])
    full = train_runs([RunConfig(**{**configs[0].to_dict(), "batch_size": None})])[0]
    assert full.curves["train_loss"] != packed[0].curves["train_loss"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_pack_matches_alone_and_cpu() -> None:
    """On CUDA, kernels may differ with batch size, so pack vs alone is compared in float64 with
    rtol 1e-9 / atol 1e-12 (step_fit, step_gen and steps_run exactly); CUDA vs CPU float64 with
    rtol 1e-6 / atol 1e-8 over 60 steps."""
    configs = mixed({**PARITY, "dtype": "float64"}, n=8)
    packed = train_runs(configs, device="cuda")
    cpu = train_runs(configs)
    assert {r.pack_size for r in packed} == {8}
    for cfg, r, c in zip(configs, packed, cpu, strict=True):
        assert r.device != "cpu"
        assert_close(r, train_runs([cfg], device="cuda")[0], rtol=1e-9, atol=1e-12)
        assert_close(r, c, rtol=1e-6, atol=1e-8)
