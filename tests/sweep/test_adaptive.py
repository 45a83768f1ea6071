"""Adaptive sweeps: CriticalFraction's bisection against a known boundary, the searcher objective, and both
kinds of search run end to end on the embedded Ray (with resume from the store)."""

from __future__ import annotations

import math
import textwrap

import pyarrow.dataset as ds
import pytest

from grokscan.cli import main
from grokscan.results.store import load_runs
from grokscan.sweep.adaptive import CENSORED_PENALTY, CriticalFraction, objective
from grokscan.sweep.space import load_space


def _bisect(critical: dict[float, float], lo=0.2, hi=0.8, tol=0.025, seeds=3):
    """Run CriticalFraction on cells whose seeds generalize iff frac >= the cell's critical value (seed s
    shifted by 0.01 * (s - 1), so the seeds disagree near it); returns the searcher and the points asked."""
    alg = CriticalFraction(tol=tol)
    cells, seed_values = [{"weight_decay": wd} for wd in critical], [{"seed": s} for s in range(seeds)]
    alg.bind({"p": 23}, lo, hi, cells, seed_values)
    asked = []
    while (proposal := alg.propose()) is not None:
        cell, x = proposal
        asked.append(proposal)
        assert [c.frac for c in alg.configs(cell, x)] == [x] * seeds
        wd = alg.cells[cell].values["weight_decay"]
        alg.observe(cell, x, [x >= critical[wd] + 0.01 * (s - 1) for s in range(seeds)])
    assert alg.finished
    return alg, asked


def test_bisection_brackets_the_boundary_within_tol():
    critical = {0.3: 0.437, 1.0: 0.561, 3.0: 0.33}
    alg, asked = _bisect(critical)
    for found in alg.boundaries():
        true = critical[found["weight_decay"]]  # the median seed's boundary: 2 of 3 from here on
        assert found["status"] == "found"
        assert found["lo"] < true <= found["hi"] and found["hi"] - found["lo"] <= 2 * 0.025
        assert abs(found["critical_frac"] - true) <= 0.025
        assert found["points"] == 2 + math.ceil(math.log2(0.6 / 0.05))  # 6, vs 13 for the dense grid
    assert len(asked) == 3 * 6 and len(set(asked)) == len(asked)


def test_bisection_out_of_range_stops_at_the_ends():
    """Asked one point at a time, a cell that generalizes at the low end needs no other point."""
    alg, asked = _bisect({0.1: 0.1, 10.0: 0.95})
    statuses = {b["weight_decay"]: (b["status"], b["points"]) for b in alg.boundaries()}
    assert statuses == {0.1: ("below range", 1), 10.0: ("above range", 2)}
    assert len(asked) == 3


def test_both_ends_are_in_flight_before_any_midpoint():
    alg = CriticalFraction(tol=0.05)
    alg.bind({}, 0.2, 0.8, [{}], [{"seed": 0}])
    assert alg.propose() == (0, 0.2) and alg.propose() == (0, 0.8) and alg.propose() is None
    alg.observe(0, 0.8, [True])
    assert alg.propose() is None  # the midpoint waits for the lower end
    alg.observe(0, 0.2, [False])
    assert alg.propose() == (0, 0.5)
    alg.observe(0, 0.5, [None])  # a failed run ends the cell rather than guessing
    assert alg.finished and alg.boundaries()[0]["status"] == "failed"


def test_objective_counts_never_as_worse_than_the_budget():
    row = {"step_gen": None, "step_fit": 300, "steps": 2000, "final_val_acc": 0.4, "final_train_acc": 1.0}
    assert objective("step_gen", row) == CENSORED_PENALTY * 2000 > 2000
    assert objective("step_fit", row) == 300
    assert objective("step_gen", {**row, "step_gen": 1200}) == 1200
    assert objective("val_acc", row) == 0.4
    assert objective("val_acc", {**row, "final_val_acc": float("nan")}) == 0.0


BISECT_SPACE = """
from ray import tune
from grokscan.sweep.adaptive import CriticalFraction
search_alg = CriticalFraction(tol=0.1)
param_space = {"p": 11, "width": 16, "lr": 1e-2, "steps": 200, "eval_every": 50,
               "weight_decay": tune.grid_search([0.0, 1.0]), "seed": tune.grid_search([0, 1]),
               "frac": tune.uniform(0.3, 0.9)}
"""

OPTUNA_SPACE = """
from ray import tune
from ray.tune.search.optuna import OptunaSearch
search_alg = OptunaSearch(seed=0)
num_samples = 4
param_space = {"p": 11, "width": 16, "steps": 200, "eval_every": 50,
               "lr": tune.loguniform(1e-3, 3e-2), "weight_decay": tune.choice([0.0, 1.0])}
"""


def _space(tmp_path, name: str, body: str):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def _raw(storage: str):
    """Every runs row of every fragment, nothing deduplicated."""
    return ds.dataset(f"{storage}/runs", partitioning="hive").to_table().to_pandas()


def test_critical_fraction_sweep_stores_its_points_and_resumes_from_them(ray_local, tmp_path, capsys):
    path, storage = _space(tmp_path, "bisect", BISECT_SPACE), str(tmp_path / "results")
    assert main(["run", path, "--storage", storage, "--no-compact"]) == 0
    first = capsys.readouterr().out
    runs = load_runs(storage, "bisect")
    assert len(runs) == len(_raw(storage)) and set(runs["status"]) == {"ok"}  # each run written once
    # every point was trained for both seeds, at one of the searcher's fractions
    per_point = runs.groupby(["weight_decay", "frac"])["seed"].apply(sorted)
    assert all(seeds == [0, 1] for seeds in per_point)
    assert "critical_frac" in first and "searching" not in first
    sweep = load_space(path)
    assert main(["run", path, "--storage", storage]) == 0
    second = capsys.readouterr().out
    assert f"0 runs trained, {len(runs)} already stored" in second
    # the replay from the store reaches the same boundaries
    assert first.split("bisect;")[-1] == second.split("bisect;")[-1]
    assert len(load_runs(storage, "bisect")) == len(runs) <= sweep.max_runs


def test_optuna_sweep_trains_num_samples_and_warm_starts_on_rerun(ray_local, tmp_path, capsys):
    path, storage = _space(tmp_path, "optuna", OPTUNA_SPACE), str(tmp_path / "results")
    assert main(["run", path, "--storage", storage, "--no-compact"]) == 0
    out = capsys.readouterr().out
    runs = load_runs(storage, "optuna")
    assert len(runs) == len(_raw(storage)) == 4 and set(runs["status"]) == {"ok"}  # each run written once
    assert runs["lr"].between(1e-3, 3e-2).all() and set(runs["weight_decay"]) <= {0.0, 1.0}
    assert runs["lr"].nunique() == 4  # sampled, not repeated
    assert "best runs by step_gen" in out
    assert main(["run", path, "--storage", storage]) == 0
    assert "0 runs trained, 4 already stored" in capsys.readouterr().out
    assert main(["run", path, "--storage", storage, "--set", "steps=100"]) == 0  # another search: new runs
    assert "4 runs trained, 0 already stored" in capsys.readouterr().out


@pytest.mark.parametrize("space, expected", [(BISECT_SPACE, "at most 16 runs"), (OPTUNA_SPACE, "at most 4")])
def test_dry_run_of_an_adaptive_sweep(tmp_path, capsys, space, expected):
    path = _space(tmp_path, "dry", space)
    assert main(["run", path, "--storage", str(tmp_path / "r"), "--dry-run"]) == 0
    assert expected in capsys.readouterr().out and not (tmp_path / "r").exists()


INVALID_SPACE = """
from ray import tune
from ray.tune.search.optuna import OptunaSearch
search_alg = OptunaSearch(seed=0)
num_samples = 8
param_space = {"task": "x/y", "p": tune.randint(97, 102), "width": 16, "steps": 100, "eval_every": 50,
               "lr": tune.loguniform(1e-3, 3e-2)}
"""


def test_an_invalid_proposal_is_an_error_row_and_the_search_goes_on(ray_local, tmp_path):
    """x/y needs a prime p: the domain's ends (97, 101) validate, but 98-100 do not. Each such proposal is
    stored as an error row with its reason and scored as never generalizing; the others train."""
    path, storage = _space(tmp_path, "invalid", INVALID_SPACE), str(tmp_path / "results")
    assert main(["run", path, "--storage", storage]) == 1  # returns (no exception escapes): some runs failed
    runs = load_runs(storage, "invalid")
    assert len(runs) == 8
    bad, good = runs[runs["status"] == "error"], runs[runs["status"] == "ok"]
    assert len(bad) and len(good) and len(bad) + len(good) == 8
    assert set(bad["p"]) <= {98, 99, 100} and set(good["p"]) <= {97, 101}
    assert bad["error"].str.contains("p must be prime").all()
