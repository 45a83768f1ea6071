"""matmul_precision: identity (None = "float32" = every earlier run's id; tf32 and bf16 are new runs that
never share a pack with float32 ones), validation, tf32 as a no-op on CPU, bf16 autocast on CPU and its
pack invariance."""

from __future__ import annotations

import pytest
import torch
from test_pack_invariance import PARITY, assert_identical, mixed

from grokscan.config import RunConfig
from grokscan.engine import precision
from grokscan.engine.loop import train_runs
from grokscan.engine.packing import pack_key
from grokscan.errors import UserError

SHORT = dict(PARITY, steps=30)


def test_identity() -> None:
    base = RunConfig()
    assert RunConfig(matmul_precision="float32") == base  # normalized to None
    assert RunConfig(matmul_precision="float32").run_id == base.run_id
    ids = {RunConfig(matmul_precision=m).run_id for m in ("tf32", "bf16")}
    assert len(ids) == 2 and base.run_id not in ids
    assert len({pack_key(RunConfig(matmul_precision=m)) for m in (None, "tf32", "bf16")}) == 3


@pytest.mark.parametrize(
    "fields,message",
    [
        (dict(matmul_precision="fp16"), "'matmul_precision' = 'fp16'.*'float32', 'tf32', 'bf16' or None"),
        (dict(matmul_precision="bf16", dtype="float64"), "applies to dtype 'float32' runs, not 'float64'"),
        (dict(matmul_precision="tf32", dtype="float64"), "applies to dtype 'float32' runs"),
    ],
)
def test_bad_values(fields: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        RunConfig(**fields)


def test_tf32_is_a_no_op_on_cpu() -> None:
    plain, tf32 = train_runs([RunConfig(**SHORT), RunConfig(**SHORT, matmul_precision="tf32")])
    assert plain.config.run_id != tf32.config.run_id
    assert plain.curves == tf32.curves


def test_tf32_mode_sets_and_restores_cuda_matmul_precision() -> None:
    """The flag is process state: set only while a tf32 pack trains on CUDA (settable without a GPU)."""
    matmul = torch.backends.cuda.matmul
    before, seen = matmul.fp32_precision, []
    for cfg, device in [
        (RunConfig(matmul_precision="tf32"), "cuda"),
        (RunConfig(matmul_precision="tf32"), "cpu"),
        (RunConfig(), "cuda"),
    ]:
        with precision.matmul_mode(cfg, torch.device(device)):
            seen.append(matmul.fp32_precision)
        assert matmul.fp32_precision == before
    assert seen == ["tf32", before, before]


def test_bf16_trains_differently_and_close_to_float32() -> None:
    plain, bf16 = train_runs([RunConfig(**SHORT), RunConfig(**SHORT, matmul_precision="bf16")])
    assert bf16.status == "ok"
    assert bf16.curves["val_loss"] != plain.curves["val_loss"]
    first = abs(bf16.curves["val_loss"][0] - plain.curves["val_loss"][0]) / plain.curves["val_loss"][0]
    assert 0 < first < 0.02  # the step-0 eval: same weights, products rounded to bf16


def test_bf16_pack_invariance_on_cpu() -> None:
    configs = mixed({**PARITY, "matmul_precision": "bf16"}, n=8)
    packed = train_runs(configs)
    assert {r.pack_size for r in packed} == {8}
    for i in (0, 3, 7):
        assert_identical(packed[i], train_runs([configs[i]])[0])
