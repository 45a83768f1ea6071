"""benchmarks/progress_onset.py: onsets and the excluded loss's rise on hand-built curves (answers worked out
by hand, and against a plain-Python reading of the definition), and its table from runs in a real store."""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from pathlib import Path

from grokscan.config import RunConfig
from grokscan.result import RunResult
from grokscan.results.store import Store

_PATH = Path(__file__).parent.parent / "benchmarks" / "progress_onset.py"
_spec = importlib.util.spec_from_file_location("progress_onset", _PATH)
progress_onset = importlib.util.module_from_spec(_spec)
sys.modules["progress_onset"] = progress_onset
_spec.loader.exec_module(progress_onset)
onset, largest_rise = progress_onset.onset, progress_onset.largest_rise

STEPS = [0, 100, 200, 300, 400, 500]


def test_onset_towards_the_max_from_the_step0_value():
    # from 0.1 to its max 1.0: covered 0, -0.1 (below its start), 0.11, 0.56, 1, 0.89
    acc = [0.1, 0.01, 0.2, 0.6, 1.0, 0.9]
    assert onset(STEPS, acc, 0.1, +1) == 200 and onset(STEPS, acc, 0.5, +1) == 300
    assert onset(STEPS, acc, 1.0, +1) == 400


def test_onset_towards_the_min():
    # from 4 to its min 1: covered 0, 0.03, 0.33, 0.67, 1, 0.83
    loss = [4.0, 3.9, 3.0, 2.0, 1.0, 1.5]
    assert onset(STEPS, loss, 0.1, -1) == 200 and onset(STEPS, loss, 0.5, -1) == 300
    assert onset(STEPS, loss, 0.5, +1) is None  # never above its start


def test_onset_exactly_on_the_share_counts_and_nan_evals_are_skipped():
    assert onset([0, 50, 100], [0.0, 0.25, 1.0], 0.25, +1) == 50
    assert onset(STEPS, [0.0, math.nan, 0.6, math.nan, 1.0, 1.0], 0.5, +1) == 200
    assert (
        onset(STEPS, [math.nan, 0.0, 0.0, 1.0, 1.0, 1.0], 0.5, +1) == 300
    )  # first computed value is the start
    assert onset(STEPS, [0.3] * 6, 0.1, +1) is None and onset([], [], 0.1, +1) is None


def _onset_by_definition(steps, values, share, direction):
    pairs = [(s, v) for s, v in zip(steps, values, strict=True) if not math.isnan(v)]
    if not pairs:
        return None
    start = pairs[0][1]
    extreme = max(v for _, v in pairs) if direction > 0 else min(v for _, v in pairs)
    way = abs(extreme - start)
    if way == 0:
        return None
    for s, v in pairs:
        if direction * (v - start) >= share * way:
            return s
    raise AssertionError("the extreme itself covers the whole way")


def test_onset_matches_the_definition_on_random_curves():
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(1, 30)
        values = [rng.choice([math.nan, rng.random(), rng.random()]) for _ in range(n)]
        steps = [50 * i for i in range(n)]
        for share in (0.1, 0.5, 0.9):
            for direction in (+1, -1):
                want = _onset_by_definition(steps, values, share, direction)
                assert onset(steps, values, share, direction) == want


def test_largest_rise_is_from_the_lowest_value_so_far():
    # falls to 3.0, rises to 3.26, falls to 1.49: one rise of 0.26
    assert largest_rise(STEPS, [4.6, 3.0, 3.2, 3.26, 2.0, 1.49]) == (100, 3.0, 300, 3.26)
    # a later rise from a lower trough (0 -> 3) beats the first one (1 -> 2)
    assert largest_rise(STEPS, [5.0, 1.0, 2.0, 0.0, 1.0, 3.0]) == (300, 0.0, 500, 3.0)
    assert largest_rise(STEPS, [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]) is None


def _result(
    weight_decay: float, seed: int, gen: int | None, acc: list[float], share: list[float]
) -> RunResult:
    n = len(STEPS)
    curves = {"step": STEPS, "train_acc": [0.0, 0.2, 1.0, 1.0, 1.0, 1.0], "val_acc": acc}
    curves |= {"fourier_top_share": share, "fourier_gini": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}
    curves |= {"val_restricted_loss": [4.0, 1.0, 1.0, 1.0, 1.0, 1.0], "train_excluded_loss": [4.0] * n}
    curves |= {"fourier_n90": [43.0, 40.0, 30.0, 20.0, 15.0, 14.0]}
    cfg = RunConfig(task="x+y", p=11, seed=seed, weight_decay=weight_decay, steps=500, eval_every=100)
    final = {k: v[-1] for k, v in curves.items() if k != "step"}
    return RunResult(cfg, "ok", 200, gen, 500, final, 1.0, "cpu", 2, curves=curves)


def test_table_from_a_store(tmp_path, capsys):
    results = [
        _result(1.0, 0, 400, [0.0, 0.0, 0.05, 0.2, 1.0, 1.0], [0.1, 0.15, 0.5, 0.9, 0.9, 1.1]),
        _result(0.0, 0, None, [0.0, 0.02, 0.04, 0.1, 0.1, 0.147], [0.1, 0.15, 0.18, 0.3, 0.3, 0.3]),
    ]
    Store(str(tmp_path)).write("progress_measures", results)
    progress_onset.main([str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if line.startswith("| ") and "---" not in line]
    assert rows[1:] == [  # weight decay 1 first; val_acc's way is 1.0 and 0.147
        "| 1, 0 | 200 | 400 | 300 / 400 | 200 / 300 | 100 / 300 | 100 / 100 |",
        "| 0, 0 | 200 | never (val_acc 0.147 at 500) | 100 / 300 | 100 / 300 | 100 / 300 | 100 / 100 |",
    ]
    assert "  top share onsets lead val_acc's by 100 / 100 steps" in out
    assert "  Gini onsets lead val_acc's by 200 / 100 steps" in out
    ranges = "top share 0 to 100, Gini 0 to 200, val restricted loss 0 to 300"
    assert f"leads over val_acc's onsets, all runs and shares (steps): {ranges}" in out
    assert "  fourier_n90: step 0 43, final (step 500) 14" in out
    assert "  train_excluded_loss never rises" in out
