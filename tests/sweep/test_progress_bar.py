"""`grokscan run`'s progress (StoreCallback.progress): a live bar on a terminal, plain lines elsewhere.

Driven with fake Tune trials and results and a fake clock: no Ray cluster, no sleeping."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest

from grokscan.results.store import Store
from grokscan.sweep import store_callback
from grokscan.sweep.store_callback import StoreCallback
from grokscan.sweep.trials import RESULT_KEY, Reported, _payload


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clock(monkeypatch):
    """A settable time.monotonic for store_callback only."""
    now = SimpleNamespace(t=100.0)
    monkeypatch.setattr(store_callback, "time", SimpleNamespace(monotonic=lambda: now.t))
    return now


def _result(*runs: tuple[str, bool]) -> dict:
    return {RESULT_KEY: _payload([Reported(run_id, "ok", gen, 0.5) for run_id, gen in runs])}


def _trials(running: int, other: int = 1) -> list:
    return [SimpleNamespace(status="RUNNING")] * running + [SimpleNamespace(status="PENDING")] * other


def _callback(tmp_path, stream, quiet: bool = False) -> StoreCallback:
    return StoreCallback(Store(str(tmp_path)), "killed", 8, 1, quiet, lambda cfg: [], stream=stream)


def test_plain_lines_at_most_every_2s_and_a_final_one(tmp_path, clock):
    out = io.StringIO()  # not a terminal: CI logs, a Ray job's logs
    cb = _callback(tmp_path, out)
    trials = _trials(running=2)
    clock.t += 1.0
    cb.on_trial_result(0, trials, trials[0], _result(("a", True)))
    assert out.getvalue() == ""  # under 2 s since the last line
    clock.t += 1.5
    cb.on_trial_result(1, trials, trials[0], _result(("b", False), ("c", True), ("a", True)))  # "a" again
    clock.t += 0.5
    cb.on_trial_result(2, trials, trials[1], _result(("d", False)))
    cb.on_step_end(3, trials)  # no line without a result
    clock.t += 0.5
    cb.on_experiment_end(_trials(running=0))
    lines = out.getvalue().splitlines()
    assert lines == [
        "[killed] 4/8 runs done, 2 generalized (this session), 2 trials running, elapsed 2s, ETA 3s",
        "[killed] 5/8 runs done, 2 generalized (this session), 0 trials running, elapsed 4s, ETA 3s",
    ]
    # the format tests/sweep/test_reliability.py reads
    assert [int(line.split()[1].split("/")[0]) for line in lines if line.startswith("[killed] ")] == [4, 5]


def test_a_bar_on_a_terminal(tmp_path, clock):
    out = Terminal()
    cb = _callback(tmp_path, out)
    trials = _trials(running=2)
    clock.t += 1.0
    cb.on_trial_result(0, trials, trials[0], _result(("a", True), ("b", False)))
    frame = out.getvalue().split("\r")[-1]
    assert re.match(r"\[killed\]  38%\|.*\| 3/8 runs \[00:01<00:0[23]\], 1 generalized, 2 running", frame), (
        frame
    )
    clock.t += 0.1
    cb.on_trial_result(1, trials, trials[1], _result(("c", True)))
    assert out.getvalue().split("\r")[-1] == frame  # redrawn at most every 0.5 s
    clock.t += 0.5
    cb.on_step_end(2, _trials(running=1))  # between results: running trials and elapsed kept current
    assert "4/8 runs" in out.getvalue().split("\r")[-1]
    assert "2 generalized, 1 running" in out.getvalue().split("\r")[-1]
    cb.on_experiment_end(_trials(running=0))
    assert cb.bar is None and out.getvalue().endswith("\n")  # closed, left on screen
    assert "0 running" in out.getvalue().split("\r")[-1] and "runs done" not in out.getvalue()
    # a second round (runner.py's retry of failed packs) starts a new bar where the first ended
    cb.on_trial_result(3, trials, trials[0], _result(("d", False)))
    assert "5/8 runs" in out.getvalue().split("\r")[-1]


@pytest.mark.parametrize("stream", [io.StringIO, Terminal])
def test_quiet_prints_nothing(tmp_path, clock, stream):
    out = stream()
    cb = _callback(tmp_path, out, quiet=True)
    clock.t += 5
    cb.on_trial_result(0, _trials(1), None, _result(("a", True)))
    cb.on_experiment_end(_trials(0))
    assert out.getvalue() == "" and cb.done == 2
