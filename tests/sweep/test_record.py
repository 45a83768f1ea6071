"""The search-space file's `record` setting: validated before any Ray work, and carried into the trials,
whose stored curves then hold the opt-in metrics' columns (every k-th eval) and whose weights are stored,
while run ids stay the same; the weights' size is printed before the sweep starts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_space import write

import grokscan
from grokscan.cli import main
from grokscan.errors import UserError
from grokscan.results.store import load_curves, load_runs
from grokscan.sweep.space import load_space

SPACE = """
    name = "rec"
    record = {"metrics": ["fourier", "layer_norms"], "every": 2, "weights": [20, "final"]}
    param_space = {"p": 11, "width": 8, "steps": 60, "eval_every": 10, "seed": tune.grid_search([0, 1])}
"""


def test_record_is_parsed_and_leaves_run_ids_alone(tmp_path):
    sweep = load_space(write(tmp_path, SPACE))
    assert sweep.record == {"metrics": ("fourier", "layer_norms"), "every": 2, "weights": ("final", 20)}
    plain = load_space(
        write(
            tmp_path,
            SPACE.replace("record =", "_record ="),
            "plain.py",
        )
    )
    assert plain.record == {}
    assert [c.run_id for c in sweep.configs] == [c.run_id for c in plain.configs]


@pytest.mark.parametrize(
    "record, message",
    [
        ("['fourier']", "record = \\['fourier'\\]: must be a dict"),
        ("{'metric': ['fourier']}", "unknown key 'metric'; did you mean 'metrics'"),
        ("{'metrics': 'fourier'}", "must be a list of metric names"),
        ("{'metrics': ['fourir']}", "'fourir' is not an opt-in curve metric; did you mean 'fourier'"),
        ("{'every': 0}", "every = 0 is invalid"),
        ("{'weights': 'final'}", "record\\['weights'\\] = 'final': must be a list of 'final' and/or steps"),
        ("{'weights': ['last']}", "record\\['weights'\\] item 'last': must be 'final' or a step >= 0"),
        ("{'weights': [25]}", "step 25: not an eval step of runs with eval_every = 50"),
    ],
)
def test_bad_record_is_one_line_naming_the_file(tmp_path, record, message):
    path = write(tmp_path, f"record = {record}\nparam_space = {{'p': 11}}\n")
    with pytest.raises(UserError, match=message) as err:
        load_space(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_dry_run_prints_the_weights_size(tmp_path, capsys):
    assert main(["run", str(write(tmp_path, SPACE)), "--storage", str(tmp_path / "r"), "--dry-run"]) == 0
    # x+y mod 11, width 8: embed 11x8, w0 16x8, b0 8, w_out 8x11, b_out 11 = 323 float32 = 1292 B a file
    assert "weights: 2.5 KiB per run (final, 20), 5.0 KiB for 2 runs" in capsys.readouterr().out


def test_sweep_stores_the_recorded_curves_and_weights(ray_local, tmp_path, capsys):
    storage = str(tmp_path / "results")
    assert main(["run", str(write(tmp_path, SPACE)), "--storage", storage]) == 0
    assert "weights: 2.5 KiB per run" in capsys.readouterr().out
    curves = load_curves(storage, "rec").sort_values(["run_id", "step"])
    assert {"fourier_top_share", "fourier_gini", "fourier_n90", "norm_embed", "norm_w_out"} <= set(curves)
    for _, rows in curves.groupby("run_id"):
        share = rows["fourier_top_share"].tolist()
        assert rows["step"].tolist() == [0, 10, 20, 30, 40, 50, 60]
        assert [math.isnan(v) for v in share] == [False, True, False, True, False, True, False]
        assert all(0 < v <= 1 for v in share[::2])
    runs = load_runs(storage, "rec")
    assert runs["final_fourier_top_share"].notna().all()
    for run_id in runs["run_id"]:
        final, early = grokscan.load_weights(storage, run_id), grokscan.load_weights(storage, run_id, 20)
        assert list(final) == ["embed", "w0", "b0", "w_out", "b_out"] and final["w0"].shape == (16, 8)
        assert not np.array_equal(final["w0"], early["w0"])
        norm = curves.loc[(curves["run_id"] == run_id) & (curves["step"] == 60), "norm_w0"].item()
        assert np.linalg.norm(final["w0"]) == pytest.approx(norm, rel=1e-6)
