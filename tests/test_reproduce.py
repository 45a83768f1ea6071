"""benchmarks/reproduce.py: its numbers come from the stored runs (checked against a direct computation),
its verdicts follow the intervals, and --write replaces only its own section."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grokscan.config import RunConfig
from grokscan.result import RunResult
from grokscan.results.store import Store, load_runs

_PATH = Path(__file__).parent.parent / "benchmarks" / "reproduce.py"
sys.path.insert(0, str(_PATH.parent))  # reproduce.py imports paper_sections.py beside it, as a script does
_spec = importlib.util.spec_from_file_location("reproduce", _PATH)
reproduce = importlib.util.module_from_spec(_spec)
sys.modules["reproduce"] = reproduce
_spec.loader.exec_module(reproduce)

STEPS = 4000
SECTION = reproduce.Section(
    "nanda2023_frac", "t", "claim.", "published.", "frac", ((0.7, 0.5), (0.5, 0.3)), threshold=None
)


def _result(frac: float, seed: int, gen: int | None) -> RunResult:
    steps_run = STEPS if gen is None else gen + 100
    steps = list(range(0, steps_run + 1, 100))
    val = [1.0 if gen is not None and s >= gen else 0.1 for s in steps]
    curves = {"step": steps, "train_acc": [1.0] * len(steps), "val_acc": val}
    curves |= {"train_loss": [0.1] * len(steps), "val_loss": [1.0] * len(steps)}
    return RunResult(
        RunConfig(task="x+y", p=11, frac=frac, seed=seed, steps=STEPS, eval_every=100),
        "ok",
        0,
        gen,
        steps_run,
        {k: v[-1] for k, v in curves.items() if k != "step"},
        2.0,
        "cpu",
        1,
        curves=curves,
    )


GENS = {0.7: [300, 400, 500, 600], 0.5: [1200, 1500, 1900, 2400], 0.3: [3000, None, None, None]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> pd.DataFrame:
    root = str(tmp_path_factory.mktemp("repro"))
    results = [_result(f, s, g) for f, gens in GENS.items() for s, g in enumerate(gens)]
    Store(root).write("nanda2023_frac", results)
    return load_runs(root, "nanda2023_frac")


def test_cell_table_numbers_are_the_stored_runs(runs):
    table = reproduce.cell_table(runs, SECTION, n_boot=50).set_index("frac")
    for frac, gens in GENS.items():
        done = [g for g in gens if g is not None]
        assert table.loc[frac, "n"] == len(gens) and table.loc[frac, "generalized"] == len(done)
    assert table.loc[0.7, "median"] == np.median(GENS[0.7]) and table.loc[0.5, "median"] == np.median(
        GENS[0.5]
    )
    assert table.loc[0.3, "median"] == np.inf  # 3 of 4 never generalized: past the budget
    for frac in (0.7, 0.5):  # a bootstrap interval of the median lies within the sample's range
        assert min(GENS[frac]) <= table.loc[frac, "lo"] <= table.loc[frac, "median"] <= table.loc[frac, "hi"]
        assert table.loc[frac, "hi"] <= max(GENS[frac])


def test_verdicts_follow_the_intervals(runs):
    table = reproduce.cell_table(runs, SECTION, n_boot=50)
    assert reproduce.verdicts(table, SECTION) == [
        "- 0.7 vs 0.5: agrees: 0.7's interval lies below 0.5's",
        "- 0.5 vs 0.3: agrees: 0.5's interval lies below 0.3's",
    ]
    flipped = reproduce.Section("nanda2023_frac", "t", "c", "p", "frac", ((0.5, 0.7),))
    assert reproduce.verdicts(table, flipped) == ["- 0.5 vs 0.7: disagrees: 0.7's interval lies below 0.5's"]
    few = reproduce.cell_table(runs[runs.seed < 2], SECTION, n_boot=50)
    assert all("fewer than 3 seeds" in line for line in reproduce.verdicts(few, SECTION))
    missing = reproduce.Section("nanda2023_frac", "t", "c", "p", "frac", ((0.9, 0.7),))
    assert reproduce.verdicts(table, missing) == ["- 0.9 vs 0.7: unresolved: not stored"]


def test_write_replaces_only_its_section(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# hand-written\n\nkept\n")
    reproduce.write(path, f"{reproduce.BEGIN}\nfirst\n{reproduce.END}\n")
    reproduce.write(path, f"{reproduce.BEGIN}\nsecond\n{reproduce.END}\n")
    text = path.read_text()
    assert text.startswith("# hand-written\n\nkept\n") and "second" in text and "first" not in text
    assert text.count(reproduce.BEGIN) == 1


def test_generate_without_runs_says_not_run_and_how(tmp_path):
    text = reproduce.generate(str(tmp_path), "cpu", n_boot=10)
    assert text.count("Not run yet at this size.") == len(reproduce.SECTIONS)
    assert "grokscan run search_spaces/prieto2025_collapse.py" in text and "--set p=59" in text


def test_measure_takes_the_first_eval_below_the_value(runs, tmp_path):
    """A section's `measure` replaces step_gen with the first step whose curve value is below the limit;
    a run that never gets there is censored."""
    loss = [4.0, 0.9, 0.2, 4.0, 3.0]
    curves = pd.DataFrame({"run_id": ["a"] * 3 + ["b"] * 2, "step": [0, 100, 200, 0, 100], "val_loss": loss})
    table = pd.DataFrame({"run_id": ["a", "b"], "step_gen": [100.0, 100.0], "steps_run": [200, 100]})
    got = reproduce.with_measure(table, curves, "val_loss", "<", 1.0)
    assert got["step_gen"].iloc[0] == 100 and np.isnan(got["step_gen"].iloc[1])
    assert reproduce.with_measure(table, curves, "val_loss", "<", 0.5)["step_gen"].iloc[0] == 200
    above = reproduce.with_measure(table, curves, "val_loss", ">", 3.5)["step_gen"].tolist()
    assert (
        above == [0, 0] and reproduce.with_measure(table, curves, "val_loss", ">", 9)["step_gen"].isna().all()
    )


def test_cells_named_by_several_columns(runs):
    """Pairs may name cells by several columns (`also`); the labels say which."""
    section = reproduce.Section(
        "nanda2023_frac", "t", "c", "p", "frac", (({"seed": 0, "frac": 0.7}, {"seed": 0, "frac": 0.3}),)
    )
    section = reproduce.Section(**{**section.__dict__, "also": ("seed",)})
    table = reproduce.cell_table(runs, section, n_boot=10)
    assert len(table) == sum(len(g) for g in GENS.values())  # one cell per (seed, frac)
    assert reproduce.verdicts(table, section) == [
        "- (0, 0.7) vs (0, 0.3): unresolved at this size: fewer than 3 seeds"
    ]


def test_extra_arms_are_their_own_commands():
    lee = next(s for s in reproduce.SECTIONS if s.preset == "lee2024_grokfast")
    cmds = reproduce.commands(lee, "cpu", "DIR")
    assert len(cmds) == 2 and cmds[0] == cmds[1][: len(cmds[0])]
    assert cmds[1][len(cmds[0]) :] == list(lee.extra[0]) and "--set" in cmds[0]
