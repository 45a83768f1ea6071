"""CUDA out-of-memory in a pack (simulated on CPU: torch.cuda.OutOfMemoryError raised from a patched
training step): the unfinished runs start again at most half as many at a time (refilling), down to one,
results equal training alone, no run is reported twice, and a run that does not fit alone is named, not
trained, while the others are."""

from __future__ import annotations

import pytest
import torch
from test_pack_invariance import PARITY, assert_identical, mixed

from grokscan.engine import loop
from grokscan.engine.loop import MemberOutOfMemory, train_pack, train_runs
from grokscan.engine.pack import Pack
from grokscan.result import RunResult


def _oom_when(monkeypatch, too_big) -> list[int]:
    """Make Pack.train_step raise CUDA OOM whenever too_big(pack, step); returns the sizes of packs that
    raised."""
    raised: list[int] = []
    step = Pack.train_step

    def train_step(self: Pack, t: int) -> None:
        if too_big(self, t):
            raised.append(len(self.configs))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        step(self, t)

    monkeypatch.setattr(Pack, "train_step", train_step)
    return raised


@pytest.mark.parametrize("fits,splits", [(2, [4]), (1, [4, 2])])
def test_oom_splits_the_pack_and_results_equal_alone(monkeypatch, fits: int, splits: list[int]) -> None:
    configs = mixed({**PARITY, "dtype": "float64"}, n=9)
    alone = [train_runs([c])[0] for c in configs]
    # A pack of more than `fits` runs fails at step 35; 5 of the 9 runs ended at earlier evals.
    raised = _oom_when(monkeypatch, lambda pack, t: len(pack.configs) > fits and t == 35)
    seen: list[RunResult] = []
    results = train_runs(configs, on_finished=seen.extend)
    ended_before = [r for r in results if r.steps_run < 35]
    assert raised == splits and len(ended_before) == 5 and {r.pack_size for r in ended_before} == {9}
    assert {r.pack_size for r in results if r.steps_run >= 35} == {fits}
    assert sorted(r.run_id for r in seen) == sorted(c.run_id for c in configs)  # each reported once
    for got, want in zip(results, alone, strict=True):
        assert got.status == "ok"
        assert_identical(got, want)


def test_a_run_too_big_alone_is_named_and_the_others_train(monkeypatch) -> None:
    configs = mixed({**PARITY, "dtype": "float64"}, n=5)
    big = configs[3]
    _oom_when(monkeypatch, lambda pack, t: any(c is big for c in pack.configs))
    seen: list[RunResult] = []
    with pytest.raises(MemberOutOfMemory, match=rf"1 run\(s\) ran out of CUDA memory.*{big.run_id}") as err:
        train_runs(configs, on_finished=seen.extend)
    assert err.value.configs == [big]
    assert [r is None for r in err.value.results] == [False, False, False, True, False]
    assert sorted(r.run_id for r in seen) == sorted(c.run_id for c in configs if c is not big)
    assert all(r.status == "ok" for r in seen)  # no run is stored as an error
    with pytest.raises(MemberOutOfMemory):
        train_pack([big])


def test_other_errors_are_not_split(monkeypatch) -> None:
    calls: list[int] = []

    def boom(self: Pack, t: int) -> None:
        calls.append(len(self.configs))
        raise RuntimeError("a bug")

    monkeypatch.setattr(Pack, "train_step", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        train_runs(mixed({**PARITY, "dtype": "float64"}, n=4))
    assert calls == [4]
    assert loop.MemberOutOfMemory is MemberOutOfMemory


def test_oom_while_runs_join_or_a_new_pack_starts(monkeypatch) -> None:
    """Out of memory as runs join a refilling pack (Pack.add), or as the next pack of a shape that cannot
    refill is built: the runs concerned are the ones retried, and one alone that still fails is named."""
    configs = mixed({**PARITY, "dtype": "float64"}, n=6)
    add, raised = Pack.add, []

    def add_oom(self: Pack, joining) -> None:
        if len(self.configs) + len(joining) > 2:
            raised.append(len(self.configs) + len(joining))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        add(self, joining)

    monkeypatch.setattr(Pack, "add", add_oom)
    results = train_runs(configs, pack_size=3)
    assert raised == [3] and max(r.pack_size for r in results) == 3
    for cfg, r in zip(configs, results, strict=True):
        assert_identical(r, train_runs([cfg])[0])
    monkeypatch.undo()
    minibatch = mixed({**PARITY, "dtype": "float64", "batch_size": 32}, n=4)
    init = Pack.__init__

    def init_oom(self: Pack, pack_configs, device) -> None:
        if any(c is minibatch[3] for c in pack_configs):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        init(self, pack_configs, device)

    monkeypatch.setattr(Pack, "__init__", init_oom)
    with pytest.raises(MemberOutOfMemory, match=minibatch[3].run_id) as err:
        train_runs(minibatch, pack_size=2)
    assert [r is None for r in err.value.results] == [False, False, False, True]
