"""S_n operand orders against openai/grok's own construction (grok/data.py, `_make_binary_operation_data`):
s5 labels ``b[a]`` on numpy arrays; s5conj ``a * b * (~a)`` and s5aba ``a * b * a`` on sympy Permutations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sympy.combinatorics import Permutation

from grokscan.config import RunConfig
from grokscan.registry import TASKS


def _labels(task: str) -> tuple[list[tuple[int, int]], list[int]]:
    data = TASKS.get(task).table(RunConfig(task=task))
    return [tuple(r) for r in data.x.tolist()], data.y.tolist()


def _openai(n: int, operator: str) -> dict[tuple[int, int], int]:
    """openai/grok's label of each (a, b) pair, by its code's rules, as an index into the permutations."""
    perms = list(itertools.permutations(range(n)))
    index = {p: i for i, p in enumerate(perms)}
    out = {}
    for (i, a), (j, b) in itertools.product(enumerate(perms), repeat=2):
        if operator == "s5":
            c = tuple(np.array(b)[np.array(a)].tolist())
        else:
            pa, pb = Permutation(list(a)), Permutation(list(b))
            c = tuple((pa * pb * (~pa) if operator == "s5conj" else pa * pb * pa).array_form)
        out[i, j] = index[c]
    return out


@pytest.mark.parametrize("n", [3, 4, 5])
def test_openai_order_tasks_equal_openai_grok(n: int) -> None:
    for ours, theirs in ((f"s{n}_openai", "s5"), (f"s{n}conj_openai", "s5conj"), (f"s{n}aba", "s5aba")):
        pairs, labels = _labels(ours)
        want = _openai(n, theirs)
        assert [want[p] for p in pairs] == labels, ours


def test_grokscan_s5_is_openai_s5_with_the_operands_swapped() -> None:
    pairs, ours = _labels("s5")
    theirs = _openai(5, "s5")
    assert [theirs[j, i] for i, j in pairs] == ours
    differ = np.mean([theirs[p] != y for p, y in zip(pairs, ours, strict=True)])
    assert 0.9 < differ < 1  # the two orders disagree on most pairs (S5 is far from abelian)


def test_grokscan_s5conj_is_openai_s5conj_with_x_inverted() -> None:
    perms = list(itertools.permutations(range(5)))
    inverse = {i: perms.index(tuple(np.argsort(p).tolist())) for i, p in enumerate(perms)}
    pairs, ours = _labels("s5conj")
    theirs = _openai(5, "s5conj")
    assert [theirs[inverse[i], j] for i, j in pairs] == ours
