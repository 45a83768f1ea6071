"""Task tables against independent Python-int arithmetic; splits and label noise."""

from __future__ import annotations

import itertools

import pytest
import torch

from grokscan import tasks
from grokscan.config import DIVISION_OPS, MOD_OPS, RunConfig


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
    data = tasks.load(cfg)
    assert data.n_vocab == p and data.n_classes == p
    assert data.x.dtype == torch.long and data.y.dtype == torch.long
    assert data.x.shape == (cfg.n_rows, 2) and data.y.shape == (cfg.n_rows,)
    first_y = 1 if op in DIVISION_OPS else 0
    pairs = [tuple(row) for row in data.x.tolist()]
    assert sorted(pairs) == [(x, y) for x in range(p) for y in range(first_y, p)]
    for (x, y), label in zip(pairs, data.y.tolist(), strict=True):
        assert label == _expected(op, x, y, p), (op, p, x, y)


@pytest.mark.parametrize("op", MOD_OPS)
@pytest.mark.parametrize("p", [7, 13])
def test_mod_ops_match_python_ints(op: str, p: int) -> None:
    _check_mod_table(op, p)


@pytest.mark.parametrize("op", [op for op in MOD_OPS if op not in DIVISION_OPS])
def test_mod_ops_composite_modulus(op: str) -> None:
    _check_mod_table(op, 10)


def test_table_row_counts_exclude_y_zero_for_division() -> None:
    assert RunConfig(task="x/y", p=11).n_rows == 11 * 10
    assert RunConfig(task="mix", p=11).n_rows == 11 * 10
    assert RunConfig(task="x+y", p=11).n_rows == 11 * 11
    x, _ = tasks.table("x/y", 11)
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
    data = tasks.load(cfg)
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
    data = tasks.load(cfg)
    assert data.n_vocab == 2 and data.n_classes == 2
    assert data.x.shape == (2**6, 6) and cfg.n_rows == 2**6
    rows = data.x.tolist()
    assert len({tuple(r) for r in rows}) == 2**6
    assert all(set(r) <= {0, 1} for r in rows)
    for bits, label in zip(rows, data.y.tolist(), strict=True):
        assert label == sum(bits[:3]) % 2


def test_parity_sampled_table() -> None:
    cfg = RunConfig(task="parity", n_bits=30, k_bits=4, n_samples=500)
    data = tasks.load(cfg)
    assert data.x.shape == (500, 30) and cfg.n_rows == 500
    rows = data.x.tolist()
    assert len({tuple(r) for r in rows}) == 500
    for bits, label in zip(rows, data.y.tolist(), strict=True):
        assert label == sum(bits[:4]) % 2
    # fixed table: every run with these sizes sees the same rows
    assert torch.equal(tasks.load(cfg).x, data.x)
    # labels are not constant (a broken table of all-zero rows would pass the parity check)
    assert 0.3 < data.y.float().mean().item() < 0.7


def test_digits_table() -> None:
    data = tasks.load(RunConfig(task="digits"))
    assert data.x.shape == (1797, 64) and data.y.shape == (1797,)
    assert data.n_vocab is None and data.n_classes == 10
    assert data.x.is_floating_point() and data.x.min() >= 0 and data.x.max() <= 1
    assert sorted(set(data.y.tolist())) == list(range(10))
    assert RunConfig(task="digits").n_rows == 1797


def test_mnist_without_files_says_how_to_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GROKSCAN_DATA", str(tmp_path))
    with pytest.raises(RuntimeError) as info:
        tasks.load(RunConfig(task="mnist"))
    message = str(info.value)
    assert "GROKSCAN_DATA" in message and str(tmp_path) in message and "digits" in message


def test_table_without_modulus_or_for_pixel_task_raises() -> None:
    with pytest.raises(ValueError, match="modulus"):
        tasks.table("x+y", None)
    with pytest.raises(ValueError, match="digits"):
        tasks.table("digits")


@pytest.mark.parametrize("n_rows,frac", [(121, 0.5), (110, 0.3), (36, 0.9)])
def test_split_partition(n_rows: int, frac: float) -> None:
    train, val = tasks.split(n_rows, frac, 3)
    assert len(train) == round(frac * n_rows)
    assert len(train) + len(val) == n_rows
    assert not set(train.tolist()) & set(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(n_rows))


def test_split_deterministic_in_seed() -> None:
    a_train, a_val = tasks.split(121, 0.5, 7)
    b_train, b_val = tasks.split(121, 0.5, 7)
    assert torch.equal(a_train, b_train) and torch.equal(a_val, b_val)
    c_train, _ = tasks.split(121, 0.5, 8)
    assert set(c_train.tolist()) != set(a_train.tolist())


@pytest.mark.parametrize("noise", [0.1, 0.25, 0.5])
def test_noisy_labels(noise: float) -> None:
    cfg = RunConfig(task="x+y", p=13, label_noise=noise, split_seed=4)
    data = tasks.load(cfg)
    train, val = tasks.split(cfg.n_rows, cfg.frac, cfg.split_seed)
    noisy = tasks.noisy_labels(data.y, train, data.n_classes, cfg)
    changed = (noisy != data.y).nonzero().squeeze(1)
    assert len(changed) == round(noise * len(train)) > 0
    assert set(changed.tolist()) <= set(train.tolist())
    assert torch.equal(noisy[val], data.y[val])
    assert ((noisy >= 0) & (noisy < data.n_classes)).all()
    # deterministic in split_seed, and the input labels are left untouched
    assert torch.equal(noisy, tasks.noisy_labels(data.y, train, data.n_classes, cfg))
    assert torch.equal(data.y, tasks.load(cfg).y)


def test_noisy_labels_zero_noise_is_identity() -> None:
    cfg = RunConfig(task="x+y", p=7)
    data = tasks.load(cfg)
    train, _ = tasks.split(cfg.n_rows, cfg.frac, cfg.split_seed)
    assert torch.equal(tasks.noisy_labels(data.y, train, data.n_classes, cfg), data.y)


def test_noisy_labels_follow_split_seed_not_seed() -> None:
    """Invariant 2: the data side (split and label noise) is drawn from split_seed alone."""
    cfgs = [
        RunConfig(task="x+y", p=13, label_noise=0.3, seed=s, split_seed=ss)
        for s, ss in [(0, 4), (9, 4), (0, 5)]
    ]
    data = tasks.load(cfgs[0])
    train, _ = tasks.split(cfgs[0].n_rows, cfgs[0].frac, 4)
    a, b, c = (tasks.noisy_labels(data.y, train, data.n_classes, cfg) for cfg in cfgs)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
