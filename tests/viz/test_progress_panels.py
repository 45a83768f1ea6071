"""Progress measures under the accuracy curves (viz.progress_panels), on stored synthetic runs (no training):
the make_result runs of test_plots with Fourier, key-frequency-loss and per-layer norm columns added, the
opt-in ones computed at every other eval (NaN between) as `record['every'] = 2` stores them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_plots import make_result

from grokscan.results.store import Store, load_curves, load_runs
from grokscan.viz.figures import phase_diagram
from grokscan.viz.report import write_report

PROGRESS = ("fourier_top_share", "fourier_gini", "train_restricted_loss", "val_restricted_loss")
PROGRESS += ("train_excluded_loss", "val_excluded_loss", "norm_embed", "norm_w0")


def with_progress(result, shift: float):
    curves = dict(result.curves)
    steps = np.asarray(curves["step"], float)
    every_other = np.where(np.arange(len(steps)) % 2 == 0, 1.0, np.nan)
    rise = 1 / (1 + np.exp(-(np.log1p(steps) - shift)))
    for k, column in enumerate(PROGRESS):
        values = rise * (k + 1) / len(PROGRESS) + 0.01
        curves[column] = list(values if column.startswith("norm_") else values * every_other)
    final = {**result.final, **{c: curves[c][-1] for c in PROGRESS}}
    return dataclasses.replace(result, curves=curves, final=final)


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("progress"))
    results = [
        with_progress(make_result(0.5, 1.0, 0, 300, 2200), shift=6.0),
        with_progress(make_result(0.5, 0.1, 0, 250, None), shift=7.0),
    ]
    Store(root).write("prog", results)
    return root


def test_progress_rows_share_the_step_axis(stored):
    runs, curves = load_runs(stored, "prog"), load_curves(stored, "prog")
    fig = phase_diagram(runs, kind="curves", curves=curves)
    grid = np.array(fig.axes).reshape(4, 2)  # accuracy, spectrum, losses, norms x two runs
    assert [ax.get_ylabel() for ax in grid[:, 0]] == [
        "accuracy",
        "embedding spectrum",
        "loss",
        "weight norm per layer",
    ]
    top, spectrum, losses, norms = grid[:, 0]
    assert all(top.get_shared_x_axes().joined(top, ax) for ax in grid[1:, 0])
    assert spectrum.get_xscale() == "log" and losses.get_yscale() == "log"
    labels = [line.get_label() for line in norms.lines if not line.get_label().startswith("_")]
    assert labels == ["embed", "w0"]
    run_id = runs.sort_values("step_gen")["run_id"].iloc[0]  # the grokking run, drawn first
    c = curves[(curves["run_id"] == run_id) & (curves["step"] > 0)].sort_values("step")
    share = next(line for line in spectrum.lines if line.get_label() == "top-frequency share")
    kept = c[["step", "fourier_top_share"]].dropna()  # the evals that computed it, joined
    assert len(kept) < len(c)
    np.testing.assert_array_equal(share.get_xdata(), kept["step"])
    np.testing.assert_array_equal(share.get_ydata(), kept["fourier_top_share"])
    run = runs.set_index("run_id").loc[run_id]
    for ax in grid[1:, 0]:  # step_fit and step_gen marked in every row
        marks = sorted(line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == ":")
        assert {run.step_fit, run.step_gen} <= set(marks)


def test_without_progress_columns_one_row(stored):
    runs, curves = load_runs(stored, "prog"), load_curves(stored, "prog")
    fig = phase_diagram(runs, kind="curves", curves=curves.drop(columns=list(PROGRESS)))
    assert len(fig.axes) == 2 and fig.axes[0].get_ylabel() == "accuracy"


def test_report_curves_show_progress(stored, tmp_path):
    page = write_report(stored, "prog", tmp_path / "prog.html").read_text(encoding="utf-8")
    assert 'alt="curves figure"' in page and "progress measures" in page
