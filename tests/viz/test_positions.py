"""The per-position loss figure (`grokscan plot --kind positions`) and its report section, on a synthetic
add_digits sweep (no training): finite runs at two training sizes and one infinite-data run, each answer
digit's loss dropping at its own step."""

from __future__ import annotations

import math

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from grokscan.cli import main
from grokscan.config import RunConfig
from grokscan.errors import UserError
from grokscan.result import RunResult
from grokscan.results.store import Store, load_curves, load_runs
from grokscan.viz.figures import phase_diagram
from grokscan.viz.positions import pick_position_runs
from grokscan.viz.report import write_report

STEPS, EVAL, K = 2000, 50, 3
BASE = dict(task="add_digits", model="transformer", n_digits=K, steps=STEPS, eval_every=EVAL)


def _drop(steps: np.ndarray, at: float | None, top: float = 2.3, floor: float = 1e-8) -> list[float]:
    if at is None:
        return list(np.full(len(steps), top))
    return list(floor + (top - floor) / (1 + np.exp(8 * (np.log(np.maximum(steps, 1)) - math.log(at)))))


def _result(fit: int | None, gen: int | None, **kw) -> RunResult:
    cfg = RunConfig(**BASE, **kw)
    steps = np.arange(0, STEPS + 1, EVAL)
    curves: dict[str, list] = {"step": steps.tolist()}
    for i in range(K + 1):  # digit i drops at its own step: a phase change per digit
        curves[f"train_loss_pos{i}"] = _drop(steps, None if fit is None else fit * (1 + 0.3 * i))
        curves[f"val_loss_pos{i}"] = _drop(steps, None if gen is None else gen * (1 + 0.3 * i))
        curves[f"train_acc_pos{i}"] = [1 - v / 2.3 for v in curves[f"train_loss_pos{i}"]]
        curves[f"val_acc_pos{i}"] = [1 - v / 2.3 for v in curves[f"val_loss_pos{i}"]]
    for split in ("train", "val"):
        curves[f"{split}_loss"] = list(np.mean([curves[f"{split}_loss_pos{i}"] for i in range(K + 1)], 0))
        curves[f"{split}_acc"] = list(np.min([curves[f"{split}_acc_pos{i}"] for i in range(K + 1)], 0))
    final = {k: v[-1] for k, v in curves.items() if k != "step"}
    return RunResult(cfg, "ok", fit, gen, STEPS, final, 1.0, "cpu", 1, None, curves)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("positions") / "results")
    results = [
        _result(200, 1500, train_size=300, weight_decay=3.0),  # grokking
        _result(150, None, train_size=300, weight_decay=1.0),  # memorization
        _result(200, 400, train_size=600, weight_decay=1.0),  # comprehension
        _result(300, 300, regime="infinite", weight_decay=1.0),  # the phase change, no gap
    ]
    Store(root).write("digits", results)
    return root


def test_positions_figure_draws_a_line_per_digit_and_split(sweep):
    runs, curves = load_runs(sweep, "digits"), load_curves(sweep, "digits")
    ids = pick_position_runs(runs, curves)
    infinite = runs.loc[runs["regime"] == "infinite", "run_id"].item()
    grokking = runs.loc[runs["phase"] == "grokking", "run_id"].item()
    assert ids[0] == infinite and grokking in ids and len(ids) == 3
    fig = phase_diagram(runs, kind="positions", curves=curves)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    for ax in fig.axes:
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert len([line for line in ax.get_lines() if len(line.get_xdata()) > 2]) == 2 * (K + 1)
    assert "infinite" in fig.axes[0].get_title()
    one = phase_diagram(runs, kind="positions", curves=curves, ax=Figure().add_subplot())
    assert len(one.axes) == 1


def test_positions_figure_needs_sequence_curves(sweep, tmp_path):
    runs = load_runs(sweep, "digits")
    with pytest.raises(UserError, match="needs the curves frame"):
        phase_diagram(runs, kind="positions")
    table = load_curves(sweep, "digits")[["sweep", "run_id", "write_id", "step", "val_acc"]]
    with pytest.raises(UserError, match="no per-position curves"):
        phase_diagram(runs, kind="positions", curves=table)


def test_plot_verb_and_report(sweep, tmp_path, capsys):
    out = tmp_path / "pos.png"
    assert main(["plot", sweep, "--sweep", "digits", "--kind", "positions", "-o", str(out)]) == 0
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 300 and image.shape[1] > 900
    page = write_report(sweep, "digits", tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<h2>Loss per answer position</h2>" in page and 'alt="positions figure"' in page
