"""Figures and the `plot` / `fit` verbs on a synthetic results directory (no training).

The synthetic sweep "syn" is frac (0.3, 0.5, 0.7) × weight_decay (0.1, 1, 10, log-spaced) × seeds 0, 1, with a
known phase per cell (`LAYOUT`), two cells whose seeds disagree, censored runs, curves for every run, and one
run that failed with an error.
"""

from __future__ import annotations

import math
import subprocess
import sys

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from grokscan.cli import main
from grokscan.config import RunConfig
from grokscan.errors import UserError
from grokscan.result import RunResult
from grokscan.results.analysis import fit_scaling
from grokscan.results.phases import PHASES
from grokscan.results.store import Store, load_curves, load_runs
from grokscan.viz import lines
from grokscan.viz.figures import phase_diagram
from grokscan.viz.lines import pick_runs
from grokscan.viz.style import PHASE_COLORS, grid_axes, is_log_spaced, varying_columns

STEPS, EVAL = 4000, 50
FRACS, WDS = (0.3, 0.5, 0.7), (0.1, 1.0, 10.0)
# (frac, weight_decay) -> (step_fit, step_gen) of seeds 0 and 1; None: never reached within STEPS.
LAYOUT = {
    (0.3, 0.1): [(250, None), (300, None)],  # memorization
    (0.5, 0.1): [(2000, None), (2500, None)],  # undetermined: 4,000 steps is under 10x step_fit
    (0.7, 0.1): [(300, None), (300, 3650)],  # mixed: memorization / grokking
    (0.3, 1.0): [(300, 3500), (350, None)],  # mixed: grokking / memorization
    (0.5, 1.0): [(300, 2200), (300, 2400)],  # grokking
    (0.7, 1.0): [(300, 800), (250, 900)],  # comprehension
    (0.3, 10.0): [(None, None), (None, None)],  # confusion
    (0.5, 10.0): [(400, 450), (400, 500)],  # comprehension
    (0.7, 10.0): [(300, 350), (300, 400)],  # comprehension
}
FAILED = RunConfig(task="x+y", p=31, frac=0.7, weight_decay=10.0, seed=2, steps=STEPS)


def _sigmoid_curve(steps: np.ndarray, at: int | None, floor: float) -> list[float]:
    """Accuracy rising from `floor` to 1 around step `at` (staying near `floor` when `at` is None)."""
    if at is None:
        return list(floor + 0.05 * np.log1p(steps) / np.log1p(STEPS))
    return list(floor + (1 - floor) / (1 + np.exp(-8 * (np.log(np.maximum(steps, 1)) - np.log(at)) - 3)))


def make_result(frac: float, wd: float, seed: int, fit: int | None, gen: int | None) -> RunResult:
    # Early stop 3 evals (patience) after both accuracies reach the threshold, else the full budget.
    steps_run = STEPS if fit is None or gen is None else min(max(fit, gen) + 3 * EVAL, STEPS)
    steps = np.arange(0, steps_run + 1, EVAL)
    train, val = _sigmoid_curve(steps, fit, 0.02), _sigmoid_curve(steps, gen, 0.01)
    loss = [-math.log(max(a, 1e-6)) for a in val]
    curves = {
        "step": steps.tolist(),
        "train_acc": train,
        "val_acc": val,
        "train_loss": [-math.log(max(a, 1e-6)) for a in train],
        "val_loss": loss,
        "weight_norm": list(30 - 10 * np.asarray(val)),
        "zero_loss_frac": [0.0] * len(steps),
    }
    return RunResult(
        config=RunConfig(task="x+y", p=31, frac=frac, weight_decay=wd, seed=seed, steps=STEPS),
        status="ok",
        step_fit=fit,
        step_gen=gen,
        steps_run=int(steps_run),
        final={m: v[-1] for m, v in curves.items() if m != "step"},
        wall_s=1.0,
        device="cpu",
        pack_size=18,
        curves=curves,
    )


def write_sweep(root, sweep: str = "syn") -> str:
    results = [
        make_result(frac, wd, seed, fit, gen)
        for (frac, wd), pair in LAYOUT.items()
        for seed, (fit, gen) in enumerate(pair)
    ]
    Store(str(root)).write(sweep, results, errors=[(FAILED, "RuntimeError: simulated failure")])
    return str(root)


def write_frac_scan(root, sweep: str = "fracscan") -> str:
    """frac 0.3–0.6 × 5 seeds with step_gen ≈ exp(10.5 − 6·frac) and 15% log-normal noise; every run at
    frac 0.3 is censored at the 4,000-step budget."""
    rng = np.random.default_rng(1)
    results = []
    for frac in (0.3, 0.4, 0.5, 0.6):
        for seed in range(5):
            gen = int(round(math.exp(10.5 - 6 * frac + 0.15 * rng.standard_normal()) / EVAL) * EVAL)
            result = make_result(frac, 1.0, seed, 200, gen if gen <= STEPS else None)
            results.append(result)
    Store(str(root)).write(sweep, results)
    return str(root)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> str:
    return write_sweep(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def frac_scan(tmp_path_factory) -> str:
    return write_frac_scan(tmp_path_factory.mktemp("frac_scan"))


@pytest.fixture(scope="module")
def runs(results) -> pd.DataFrame:
    return load_runs(results, "syn")


def _cells(fig: Figure) -> QuadMesh:
    return next(c for c in fig.axes[0].collections if isinstance(c, QuadMesh))


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_default_axes_and_bad_columns(runs):
    assert varying_columns(runs) == ["frac", "weight_decay"]
    assert grid_axes(runs) == ("frac", "weight_decay")
    assert grid_axes(runs, x="weight_decay") == ("weight_decay", "frac")
    assert grid_axes(runs[runs.weight_decay == 1.0]) == ("frac", None)
    with pytest.raises(UserError, match="unknown column 'wd'.*frac, weight_decay"):
        grid_axes(runs, y="wd")
    with pytest.raises(UserError, match="nothing varies"):
        phase_diagram(runs[(runs.frac == 0.5) & (runs.weight_decay == 1.0)])
    with pytest.raises(UserError, match="unknown kind 'heat'"):
        phase_diagram(runs, kind="heat")


def test_a_column_fixed_by_an_earlier_one_is_no_axis():
    # p is null for the permutation task and 31 otherwise: it follows from task, so it is no grid axis.
    runs = pd.DataFrame(
        {
            "task": ["x+y", "s5"] * 4,
            "p": [31, None] * 4,
            "frac": [0.3] * 4 + [0.5] * 4,
            "seed": [0, 0, 1, 1] * 2,
        }
    )
    assert varying_columns(runs) == ["task", "frac"]


@pytest.mark.parametrize(
    "values, expected",
    [
        ([1e-4, 1e-3, 1e-2, 1e-1], True),
        ([0.1, 0.3, 1.0, 3.0], True),
        ([1, 2, 4, 8, 16], True),
        ([0.3, 0.4, 0.5, 0.6, 0.7], False),
        ([0.0, 0.1, 1.0], False),
        ([0.1, 1.0], True),
        ([0.3, 0.5], False),
        (["x+y", "x-y"], False),
    ],
)
def test_is_log_spaced(values, expected):
    assert is_log_spaced(values) is expected


def test_phase_map(runs):
    fig = phase_diagram(runs)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "frac" and ax.get_ylabel() == "weight_decay (log-spaced)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.3", "0.5", "0.7"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.1", "1", "10"]
    mesh = _cells(fig)
    assert mesh.get_array().size == 9
    fig.draw_without_rendering()
    # Rows are weight decays bottom-up, columns fracs left to right; colours are the fixed phase colours.
    colors = mesh.get_facecolors().reshape(3, 3, 4)
    expected = {
        (0, 0): "memorization",
        (0, 1): "undetermined",
        (1, 1): "grokking",
        (1, 2): "comprehension",
        (2, 0): "confusion",
    }
    for (i, j), phase in expected.items():
        assert matplotlib.colors.to_hex(colors[i, j]) == PHASE_COLORS[phase].lower(), (i, j)
    assert _legend(ax) == [*PHASES, "seeds disagree"]
    hatched = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch()]
    assert sorted((round(p.get_x()), round(p.get_y())) for p in hatched) == [(0, 1), (2, 0)]


def test_phase_map_names_phases_with_the_gap(runs):
    # Every delay in LAYOUT is under 3,400 steps: with that gap no run groks, and the cells follow.
    mesh = _cells(phase_diagram(runs, gap=3400))
    mesh.figure.draw_without_rendering()
    colors = {matplotlib.colors.to_hex(c) for c in mesh.get_facecolors()}
    assert PHASE_COLORS["grokking"].lower() not in colors and PHASE_COLORS["comprehension"].lower() in colors
    assert (runs.phase == "grokking").any()  # the frame passed in is left as it was
    with pytest.raises(UserError, match="gap"):
        phase_diagram(runs, gap=-5)


def test_phase_strip_and_log_ticks(runs):
    strip = runs[runs.weight_decay == 1.0]
    ax = phase_diagram(strip).axes[0]
    assert _cells(ax.figure).get_array().size == 3 and not ax.get_yticks().size
    # A grid of powers of ten far from 1 gets 10^k tick labels.
    wide = runs.assign(weight_decay=runs.weight_decay.map({0.1: 1e-5, 1.0: 1e-4, 10.0: 1e-3}))
    ax = phase_diagram(wide, x="weight_decay", y="frac").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["$10^{-5}$", "$10^{-4}$", "$10^{-3}$"]
    assert ax.get_xlabel() == "weight_decay (log-spaced)" and ax.get_ylabel() == "frac"


def test_time_map_marks_censored_cells(runs):
    fig = phase_diagram(runs, kind="time")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 9 and texts.count("> 4,000") == 3
    assert "2,300" in texts  # median over seeds of 2,200 and 2,400
    assert len(fig.axes) == 2 and "median step_gen" in fig.axes[1].get_ylabel()  # colorbar
    assert ax.get_xlabel() == "frac" and ax.get_ylabel().startswith("weight_decay")


def test_curves_prefer_grokking(runs, results):
    picks = pick_runs(runs)
    phases = runs.set_index("run_id").loc[picks, "phase"].tolist()
    assert len(picks) == 4 and phases[:2] == ["grokking", "grokking"] and len(set(phases)) >= 3
    curves = load_curves(results, "syn", run_ids=picks)
    fig = phase_diagram(runs, kind="curves", curves=curves)
    assert len(fig.axes) == 4
    first = fig.axes[0]
    assert first.get_xscale() == "log" and first.get_ylabel() == "accuracy"
    assert _legend(first) == ["train", "validation", "step_fit", "step_gen"]
    assert first.get_title().startswith("grokking")
    run = runs.set_index("run_id").loc[picks[0]]
    vlines = sorted(line.get_xdata()[0] for line in first.lines if line.get_linestyle() == ":")
    assert vlines == [run.step_fit, run.step_gen]
    with pytest.raises(UserError, match="needs the curves frame"):
        phase_diagram(runs, kind="curves")


def _censored_markers(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections if c.get_paths() and len(c.get_facecolor()) == 0)


def test_scaling_one_fit_per_weight_decay(runs):
    fig = phase_diagram(runs, kind="scaling", n_boot=0)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "frac" and ax.get_ylabel() == "step_gen (steps)"
    labels = _legend(ax)
    groups = [label for label in labels if label.startswith("weight_decay=")]
    assert [g.split(":")[0] for g in groups] == ["weight_decay=0.1", "weight_decay=1", "weight_decay=10"]
    # At weight decay 0.1 only frac 0.7 generalized: a fit there rests on censored runs alone.
    assert groups[0].endswith("(generalized at one x: weak)") or groups[0].endswith("no fit")
    assert "budget (4,000 steps)" in labels
    ok = runs[runs.status == "ok"]
    assert _censored_markers(ax) == int(ok.step_gen.isna().sum())


def test_scaling_fit_line_and_band(frac_scan, monkeypatch):
    runs = load_runs(frac_scan)
    fits = []

    def fit_once(*args, **kwargs):
        fits.append(fit_scaling(*args, **kwargs))
        return fits[-1]

    monkeypatch.setattr(lines, "fit_scaling", fit_once)
    ax = phase_diagram(runs, kind="scaling", n_boot=50).axes[0]
    assert len(fits) == 1  # one bootstrap gives both the CI and the band
    label = next(label for label in _legend(ax) if label.startswith("fit: b = "))
    b, lo, hi = (float(v) for v in label.removeprefix("fit: b = ").strip("]").replace(" [", ",").split(","))
    assert lo < b < hi and 4 < b < 8  # the data were drawn with b = 6
    ci = fit_scaling(runs, x="frac", n_boot=50).b_ci  # the legend's CI is fit_scaling's, same seed
    assert (lo, hi) == tuple(float(f"{v:.3g}") for v in ci)
    assert _censored_markers(ax) == 5
    bands = [c for c in ax.collections if type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection")]
    assert len(bands) == 1
    band = fits[0].band(np.linspace(0.3, 0.6, 80))
    ys = bands[0].get_paths()[0].vertices[:, 1]
    assert ys.max() == pytest.approx(band[1].max()) and ys.min() == pytest.approx(band[0].min())
    (line,) = [line for line in ax.lines if line.get_linestyle() == "-"]
    xs, ys = line.get_data()
    assert xs.min() == 0.3 and xs.max() == 0.6 and ys[0] > ys[-1]


def test_no_torch_or_ray_on_import():
    code = (
        "import sys, grokscan.viz.figures, grokscan.viz.report, grokscan.cli; "
        "bad = [m for m in ('torch', 'ray') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("kind", ["phase", "time", "curves", "scaling"])
def test_plot_cli_writes_a_non_blank_png(results, tmp_path, monkeypatch, capsys, kind):
    monkeypatch.chdir(tmp_path)
    assert main(["plot", results, "--kind", kind]) == 0  # the only sweep: --sweep may be omitted
    out = tmp_path / f"syn_{kind}.png"
    assert str(out.name) in capsys.readouterr().out
    pixels = matplotlib.image.imread(out)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels[..., :3].var() > 1e-3


def test_plot_cli_options_and_bad_input(results, tmp_path, capsys):
    out = tmp_path / "wd.png"
    assert (
        main(["plot", results, "--sweep", "syn", "--x", "weight_decay", "--y", "frac", "-o", str(out)]) == 0
    )
    assert out.exists()
    capsys.readouterr()
    cases = [
        (["plot", results, "--sweep", "nope"], "no sweep 'nope'"),
        (["plot", results, "--sweep", "syn", "--x", "wd"], "unknown column 'wd'"),
        (["plot", str(tmp_path / "empty")], "no runs stored under"),
        (["fit", results, "--x", "lr"], "no fit of step_gen against 'lr' in syn"),
        (["fit", results, "--x", "wd"], "unknown column 'wd'"),
        (["fit", results, "--budget", "0"], "--budget 0"),
        (["plot", results, "--sweep", "a/b"], "invalid sweep name"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("grokscan: "), (argv, err)


def test_sweep_must_be_named_when_several(tmp_path, capsys):
    write_sweep(tmp_path, "one")
    write_sweep(tmp_path, "two")
    assert main(["plot", str(tmp_path), "-o", str(tmp_path / "x.png")]) == 2
    assert "holds 2 sweeps (one, two): pick one with --sweep" in capsys.readouterr().err


def test_fit_cli_prints_the_table(frac_scan, capsys):
    assert main(["fit", frac_scan, "--budget", "5000"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("fracscan: log step_gen = a - b*frac")
    header, row = lines[1].split(), lines[2].split()
    assert header[:6] == ["a", "a", "95%", "CI", "b", "b"] and "slowdown" in header and "budget" in header
    assert len(lines) == 3 and "lognormal-aft" in row and "x1.8" in lines[2]  # exp(0.1 · 6) = 1.82


def test_pooled_note_counts_only_the_rows_a_figure_draws():
    from grokscan.viz.style import pooled_note

    runs = pd.DataFrame(
        {
            "train_size": [300, 600, None, None],  # the last two: infinite-data runs, off a train_size axis
            "weight_decay": [0.0, 1.0, 0.0, 1.0],
            "batch_size": [None, None, 700, 700],
            "lr": [1e-3, 1e-3, 1e-3, 3e-3],
        }
    )
    assert pooled_note(runs, ("train_size", "weight_decay")) == ""
    # batch_size is no axis of its own: set exactly where train_size is not
    assert pooled_note(runs, ("weight_decay", None)) == "pooled over lr (2 values), train_size (3 values)"
