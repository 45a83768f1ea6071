"""step_fit / step_gen at an analysis threshold, from the stored curves (grokscan.results.thresholds)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from grokscan.cli import main
from grokscan.config import RunConfig
from grokscan.engine.loop import train_runs
from grokscan.errors import UserError
from grokscan.results.store import Store, load_curves, load_runs
from grokscan.results.thresholds import at_threshold, first_steps

NAN = math.nan


def _curves(
    run_id: str, train: list[float], val: list[float], losses: list[float] | None = None
) -> pd.DataFrame:
    steps = [100 * i for i in range(len(train))]
    losses = losses or [1.0] * len(train)
    return pd.DataFrame(
        {
            "run_id": run_id,
            "step": steps,
            "train_acc": train,
            "val_acc": val,
            "train_loss": losses,
            "val_loss": 1.0,
        }
    )


HAND = pd.concat(
    [
        _curves("a", [0.1, 0.5, 0.92, 0.995, 1.0], [0.0, 0.1, 0.3, 0.91, 0.999]),  # fit 200 / 300 @0.9 / 0.99
        _curves("b", [0.2, 0.95, 0.97, 0.98], [0.1, 0.2, 0.89, 0.9]),  # 0.9: fit 100, gen 300; 0.99: neither
        _curves("c", [0.3, 0.95, 1.0], [0.2, 0.95, 1.0], losses=[1.0, NAN, 1.0]),  # the NaN eval never counts
    ],
    ignore_index=True,
)


def test_first_steps_on_hand_built_curves():
    at = first_steps(HAND, 0.9, ["run_id"]).set_index("run_id")
    assert at.loc["a"].tolist() == [200, 300] and at.loc["b"].tolist() == [100, 300]
    assert at.loc["c"].tolist() == [200, 200]
    strict = first_steps(HAND, 0.99, ["run_id"]).set_index("run_id")
    assert strict.loc["a"].tolist() == [300, 400] and "b" not in strict.index
    assert strict.loc["c"].tolist() == [200, 200]


def test_at_threshold_replaces_steps_and_censoring_only():
    runs = pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "failed"],
            "threshold": 0.99,
            "status": ["ok", "ok", "ok", "error"],
            "step_fit": pd.array([300, None, 200, None], dtype="Int64"),
            "step_gen": pd.array([400, None, 200, None], dtype="Int64"),
            "censored": [False, True, False, True],
            "frac": [0.5, 0.6, 0.7, 0.8],
        }
    )
    out = at_threshold(runs, HAND, 0.9)
    assert out["step_fit"].tolist() == [200, 100, 200, pd.NA]
    assert out["step_gen"].tolist() == [300, 300, 200, pd.NA]
    assert out["censored"].tolist() == [False, False, False, True]
    assert out["frac"].tolist() == runs["frac"].tolist() and runs["step_fit"].tolist()[0] == 300  # a copy
    with pytest.raises(UserError, match="threshold = 0.995.*above 0.99"):
        at_threshold(runs, HAND, 0.995)
    for bad in (0.0, 1.5, True):
        with pytest.raises(UserError, match="threshold"):
            at_threshold(runs, HAND, bad)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("thr"))
    cfgs = [
        RunConfig(p=11, width=16, lr=1e-2, steps=300, eval_every=25, frac=f, weight_decay=1.0)
        for f in (0.5, 0.8)
    ]
    Store(root).write("t", train_runs(cfgs))
    return root


def test_recomputing_at_the_runs_own_threshold_gives_the_stored_steps(trained):
    stored = load_runs(trained, "t")
    again = load_runs(trained, "t", threshold=0.99)
    pd.testing.assert_frame_equal(stored, again)
    low = load_runs(trained, "t", threshold=0.5)
    assert (low["step_fit"] <= stored["step_fit"].fillna(10**9)).all()
    curves = load_curves(trained, "t")
    for run in low.itertuples():  # first eval at or above 0.5, by a plain loop
        rows = curves[curves.run_id == run.run_id].sort_values("step")
        want = next((s for s, a in zip(rows.step, rows.train_acc, strict=True) if a >= 0.5), None)
        assert (pd.isna(run.step_fit) and want is None) or run.step_fit == want


def test_cli_threshold_flag(trained, tmp_path, capsys):
    assert main(["ls", trained, "--threshold", "0.5"]) == 0
    assert "t" in capsys.readouterr().out
    assert main(["plot", trained, "--threshold", "0.9", "-o", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").exists()
    assert main(["report", trained, "--threshold", "0.9", "-o", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "accuracy 0.9" in page and "threshold=0.9" in page
    assert main(["ls", trained, "--threshold", "2"]) == 2
    assert "threshold = 2.0" in capsys.readouterr().err


def test_no_curves_stored(tmp_path):
    assert load_runs(str(tmp_path), threshold=0.9).empty  # nothing stored at all
    Store(str(tmp_path)).write("f", errors=[(RunConfig(seed=1), "boom")])  # a failed run: no curves
    runs = load_runs(str(tmp_path), "f", threshold=0.9)
    assert len(runs) == 1 and pd.isna(runs["step_fit"].iloc[0]) and bool(runs["censored"].iloc[0])
