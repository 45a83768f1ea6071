"""The search-space file's `record` setting: validated before any Ray work, and carried into the trials,
whose stored curves then hold the opt-in metrics' columns (every k-th eval) while run ids stay the same."""

from __future__ import annotations

import math

import pytest
from test_space import write

from grokscan.cli import main
from grokscan.errors import UserError
from grokscan.results.store import load_curves, load_runs
from grokscan.sweep.space import load_space

SPACE = """
    name = "rec"
    record = {"metrics": ["fourier", "layer_norms"], "every": 2}
    param_space = {"p": 11, "width": 8, "steps": 60, "eval_every": 10, "seed": tune.grid_search([0, 1])}
"""


def test_record_is_parsed_and_leaves_run_ids_alone(tmp_path):
    sweep = load_space(write(tmp_path, SPACE))
    assert sweep.record == {"metrics": ("fourier", "layer_norms"), "every": 2}
    plain = load_space(
        write(
            tmp_path,
            SPACE.replace('record = {"metrics": ["fourier", "layer_norms"], "every": 2}', ""),
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
    ],
)
def test_bad_record_is_one_line_naming_the_file(tmp_path, record, message):
    path = write(tmp_path, f"record = {record}\nparam_space = {{'p': 11}}\n")
    with pytest.raises(UserError, match=message) as err:
        load_space(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_sweep_stores_the_recorded_curves(ray_local, tmp_path, capsys):
    storage = str(tmp_path / "results")
    assert main(["run", str(write(tmp_path, SPACE)), "--storage", storage]) == 0
    curves = load_curves(storage, "rec").sort_values(["run_id", "step"])
    assert {"fourier_top_share", "fourier_gini", "fourier_n90", "norm_embed", "norm_w_out"} <= set(curves)
    for _, rows in curves.groupby("run_id"):
        share = rows["fourier_top_share"].tolist()
        assert rows["step"].tolist() == [0, 10, 20, 30, 40, 50, 60]
        assert [math.isnan(v) for v in share] == [False, True, False, True, False, True, False]
        assert all(0 < v <= 1 for v in share[::2])
    runs = load_runs(storage, "rec")
    assert runs["final_fourier_top_share"].notna().all()
