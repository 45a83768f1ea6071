"""RunConfig and the registry entries: an unknown name of any kind is a UserError naming the field, the
value and the closest registered name; each entry's fields are None for runs of the other entries, and
the entries resolve their own defaults."""

from __future__ import annotations

import re

import pytest

from grokscan.config import RunConfig
from grokscan.errors import UserError
from grokscan.registry import BY_FIELD


@pytest.mark.parametrize(
    "field,value,closest",
    [
        ("task", "x+yy", "x+y"),
        ("model", "mlpp", "mlp"),
        ("activation", "rellu", "relu"),
        ("optimizer", "adamww", "adamw"),
        ("grad_filter", "grokfst", "grokfast"),
        ("loss", "stablemx", "stablemax"),
        ("ticket", "magnitud", "magnitude"),
    ],
)
def test_unknown_name_names_field_value_and_closest(field: str, value: str, closest: str) -> None:
    assert closest in BY_FIELD[field].names()
    with pytest.raises(UserError) as info:
        RunConfig(**{field: value})
    message = str(info.value)
    assert f"{field!r}" in message and f"{value!r}" in message
    assert f"did you mean {closest!r}" in message
    assert re.search(rf"not a registered {BY_FIELD[field].kind}\b", message)


def test_every_registry_kind_is_checked() -> None:
    kinds = {"task", "model", "activation", "optimizer", "grad_filter", "loss", "ticket"}
    assert set(BY_FIELD) == kinds


def test_unknown_name_far_from_all_lists_the_registered_ones() -> None:
    with pytest.raises(UserError, match=r"'optimizer' = 'zzzz'.*allowed: adamw, adam, sgd"):
        RunConfig(optimizer="zzzz")


def test_task_fields_of_other_tasks_are_none() -> None:
    s3 = RunConfig(task="s3", p=11, n_bits=9)
    assert s3.p is None and (s3.n_bits, s3.k_bits, s3.n_samples) == (None, None, None)
    mod = RunConfig(task="x+y", p=11)
    assert mod.p == 11 and (mod.n_bits, mod.k_bits, mod.n_samples) == (None, None, None)
    parity = RunConfig(task="parity", n_bits=8, k_bits=2, n_samples=100)
    assert parity.p is None and (parity.n_bits, parity.k_bits, parity.n_samples) == (8, 2, 100)
    digits = RunConfig(task="digits")
    assert digits.p is None and (digits.n_bits, digits.k_bits, digits.n_samples) == (None, None, None)


def test_model_fields_and_defaults() -> None:
    mlp = RunConfig(model="mlp", heads=8, d_mlp=99)
    assert mlp.heads is None and mlp.d_mlp is None and mlp.width == 64
    tf = RunConfig(model="transformer")
    assert tf.width == 128 and tf.heads == 4 and tf.d_mlp == 4 * 128
    assert RunConfig(model="transformer", width=32, heads=2).d_mlp == 4 * 32
    assert RunConfig(model="transformer", width=32, heads=2, d_mlp=40).d_mlp == 40
    assert RunConfig(model="mlp", width=16).width == 16


def test_optimizer_fields_of_other_optimizers_are_none() -> None:
    sgd = RunConfig(optimizer="sgd", momentum=0.9)
    assert (sgd.beta1, sgd.beta2, sgd.eps) == (None, None, None) and sgd.momentum == 0.9
    for name in ("adamw", "adam"):
        adam = RunConfig(optimizer=name, momentum=0.9)
        assert adam.momentum is None and (adam.beta1, adam.beta2, adam.eps) == (0.9, 0.98, 1e-8)


@pytest.mark.parametrize("grad_filter", ["none", "perp", "grokfast"])
def test_grokfast_fields_only_for_grokfast(grad_filter: str) -> None:
    cfg = RunConfig(grad_filter=grad_filter, grokfast_alpha=0.9, grokfast_lamb=1.5)
    want = (0.9, 1.5) if grad_filter == "grokfast" else (None, None)
    assert (cfg.grokfast_alpha, cfg.grokfast_lamb) == want


def test_normalized_configs_are_equal_and_share_an_id() -> None:
    """Values of fields that do not apply cannot make two runs differ."""
    a, b = RunConfig(task="s3", p=5), RunConfig(task="s3", p=13)
    assert a == b and a.run_id == b.run_id
    c, d = RunConfig(optimizer="sgd", beta1=0.5), RunConfig(optimizer="sgd", beta1=0.8)
    assert c == d and c.run_id == d.run_id
