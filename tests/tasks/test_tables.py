"""Task tables (TASKS.get(name).table(cfg)) against independent Python-int arithmetic."""

from __future__ import annotations

import itertools

import pytest
import torch

from grokscan.config import RunConfig
from grokscan.errors import UserError
from grokscan.registry import TASKS
from grokscan.tasks.modular import DIVIDES, FORMULAS

MOD_OPS = tuple(FORMULAS)


def _load(cfg: RunConfig):
    """The full table of a run's task."""
    return TASKS.get(cfg.task).table(cfg)


def _inverse(y: int, p: int) -> int:
    """Brute-force modular inverse (deliberately not pow(y, -1, p) or Fermat)."""
    matches = [z for z in range(p) if y * z % p == 1]
    assert len(matches) == 1
    return matches[0]


def _expected(op: str, x: int, y: int, p: int) -> int:
    if op == "x/y":
        return x * _inverse(y, p) % p
    if op == "mix":
        return x * _inverse(y, p) % p if y % 2 == 1 else (x - y) % p
    return {
        "x+y": x + y,
        "x-y": x - y,
        "x*y": x * y,
        "x^2+y^2": x * x + y * y,
        "x^2+xy+y^2": x * x + x * y + y * y,
        "x^2+xy+y^2+x": x * x + x * y + y * y + x,
        "x^3+xy": x * x * x + x * y,
        "x^3+xy^2+y": x * x * x + x * y * y + y,
    }[op] % p


def _check_mod_table(op: str, p: int) -> None:
    cfg = RunConfig(task=op, p=p)
    data = _load(cfg)
    assert data.n_vocab == p and data.n_classes == p
    assert data.x.dtype == torch.long and data.y.dtype == torch.long
    assert data.x.shape == (cfg.n_rows, 2) and data.y.shape == (cfg.n_rows,)
    first_y = 1 if op in DIVIDES else 0
    pairs = [tuple(row) for row in data.x.tolist()]
    assert sorted(pairs) == [(x, y) for x in range(p) for y in range(first_y, p)]
    for (x, y), label in zip(pairs, data.y.tolist(), strict=True):
        assert label == _expected(op, x, y, p), (op, p, x, y)


@pytest.mark.parametrize("op", MOD_OPS)
@pytest.mark.parametrize("p", [7, 13])
def test_mod_ops_match_python_ints(op: str, p: int) -> None:
    _check_mod_table(op, p)


@pytest.mark.parametrize("op", [op for op in MOD_OPS if op not in DIVIDES])
def test_mod_ops_composite_modulus(op: str) -> None:
    _check_mod_table(op, 10)


def test_table_row_counts_exclude_y_zero_for_division() -> None:
    assert RunConfig(task="x/y", p=11).n_rows == 11 * 10
    assert RunConfig(task="mix", p=11).n_rows == 11 * 10
    assert RunConfig(task="x+y", p=11).n_rows == 11 * 11
    x = _load(RunConfig(task="x/y", p=11)).x
    assert (x[:, 1] != 0).all()


def _compose(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(a[b[i]] for i in range(len(a)))


def _invert(a: tuple[int, ...]) -> tuple[int, ...]:
    out = [0] * len(a)
    for i, v in enumerate(a):
        out[v] = i
    return tuple(out)


@pytest.mark.parametrize("n", [3, 4, 5])
@pytest.mark.parametrize("variant", ["", "conj", "aba"])
def test_permutation_tasks(n: int, variant: str) -> None:
    cfg = RunConfig(task=f"s{n}{variant}")
    data = _load(cfg)
    perms = list(itertools.permutations(range(n)))
    index = {perm: i for i, perm in enumerate(perms)}
    assert data.n_vocab == data.n_classes == len(perms)
    assert data.x.shape == (cfg.n_rows, 2) and cfg.n_rows == len(perms) ** 2
    pairs = [tuple(row) for row in data.x.tolist()]
    assert sorted(pairs) == [(i, j) for i in range(len(perms)) for j in range(len(perms))]
    for (i, j), label in zip(pairs, data.y.tolist(), strict=True):
        x, y = perms[i], perms[j]
        if variant == "":
            want = _compose(x, y)
        elif variant == "conj":
            want = _compose(_compose(x, y), _invert(x))
        else:
            want = _compose(_compose(x, y), x)
        assert label == index[want], (variant, x, y)


def test_parity_full_table() -> None:
    cfg = RunConfig(task="parity", n_bits=6, k_bits=3, n_samples=None)
    data = _load(cfg)
    assert data.n_vocab == 2 and data.n_classes == 2
    assert data.x.shape == (2**6, 6) and cfg.n_rows == 2**6
    rows = data.x.tolist()
    assert len({tuple(r) for r in rows}) == 2**6
    assert all(set(r) <= {0, 1} for r in rows)
    for bits, label in zip(rows, data.y.tolist(), strict=True):
        assert label == sum(bits[:3]) % 2


def test_parity_sampled_table() -> None:
    cfg = RunConfig(task="parity", n_bits=30, k_bits=4, n_samples=500)
    data = _load(cfg)
    assert data.x.shape == (500, 30) and cfg.n_rows == 500
    rows = data.x.tolist()
    assert len({tuple(r) for r in rows}) == 500
    for bits, label in zip(rows, data.y.tolist(), strict=True):
        assert label == sum(bits[:4]) % 2
    # fixed table: every run with these sizes sees the same rows
    assert torch.equal(_load(cfg).x, data.x)
    # labels are not constant (a broken table of all-zero rows would pass the parity check)
    assert 0.3 < data.y.float().mean().item() < 0.7


def test_digits_table() -> None:
    data = _load(RunConfig(task="digits"))
    assert data.x.shape == (1797, 64) and data.y.shape == (1797,)
    assert data.n_vocab is None and data.n_classes == 10
    assert data.x.is_floating_point() and data.x.min() >= 0 and data.x.max() <= 1
    assert sorted(set(data.y.tolist())) == list(range(10))
    assert RunConfig(task="digits").n_rows == 1797


def test_mnist_without_files_says_how_to_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GROKSCAN_DATA", str(tmp_path))
    with pytest.raises(UserError) as info:
        _load(RunConfig(task="mnist"))
    message = str(info.value)
    assert "GROKSCAN_DATA" in message and str(tmp_path) in message and "digits" in message


def test_table_without_modulus_or_token_model_on_pixel_task_raises() -> None:
    """A modular task without a modulus, and a model that needs token ids on a pixel task, are refused when
    the config is built (before any table)."""
    with pytest.raises(ValueError, match="modulus"):
        RunConfig(task="x+y", p=None)
    with pytest.raises(ValueError, match="digits"):
        RunConfig(task="digits", model="transformer")
