"""Faults: a killed driver, concurrent writers, divergence inside a sweep, determinism of whole sweeps."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from grokscan.cli import main
from grokscan.config import RunConfig
from grokscan.result import RunResult
from grokscan.results.store import Store, load_curves, load_runs

SMOKE = str(Path(__file__).parents[2] / "search_spaces" / "smoke.py")
TIMING = ["wall_s", "created_at", "write_id"]
CURVE_COLUMNS = ("train_acc", "val_acc", "train_loss", "val_loss", "weight_norm", "zero_loss_frac")
KILL_SPACE = """
from ray import tune
name = "killed"
pack_size = 1
param_space = {"p": 23, "width": 32, "lr": 1e-2, "steps": 400, "patience": 1000,
               "seed": tune.grid_search(list(range(8)))}
"""


def _grokscan(space: Path, storage: Path, *flags: str) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("grokscan")
    env = {**os.environ, "RAY_ADDRESS": ""}
    return subprocess.Popen(
        [str(exe), "run", str(space), "--storage", str(storage), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )


@pytest.mark.slow
def test_killed_driver_loses_no_landed_run_and_resume_trains_only_the_rest(tmp_path):
    space, storage = tmp_path / "killed.py", tmp_path / "results"
    space.write_text(textwrap.dedent(KILL_SPACE))
    landed: dict[str, str] = {}
    for wait_for in (1, 3):  # kill right after the first write lands, then mid-way through the resume
        proc = _grokscan(space, storage)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(Store(str(storage)).done_run_ids("killed")) < wait_for:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        before = load_runs(str(storage), "killed")
        assert len(before) >= wait_for
        for run_id, write_id in zip(before["run_id"], before["write_id"], strict=True):
            assert landed.setdefault(run_id, write_id) == write_id  # a landed run is never rewritten
        landed.update(zip(before["run_id"], before["write_id"], strict=True))
    assert _grokscan(space, storage, "--no-compact").wait(timeout=300) == 0
    runs = load_runs(str(storage), "killed")
    assert len(runs) == 8 and set(runs["status"]) == {"ok"}
    assert all(runs.set_index("run_id").loc[r, "write_id"] == w for r, w in landed.items())
    raw = pd.read_parquet(storage / "runs")  # every fragment, no dedupe: nothing was trained twice
    assert len(raw) == 8 and not any(p.name.startswith(".tmp") for p in storage.rglob("*"))
    assert set(load_curves(str(storage), "killed")["run_id"]) == set(runs["run_id"])


def _raw_runs(storage: Path) -> pd.DataFrame:
    """Every runs row in every fragment, nothing deduplicated."""
    return (
        pd.read_parquet(storage / "runs") if (storage / "runs").exists() else pd.DataFrame(columns=["run_id"])
    )


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [1, 4])
def test_driver_killed_right_after_a_report_loses_no_reported_run(tmp_path, kill_at):
    """The driver learns of a run only after its trial stored it: SIGKILLed as soon as its progress line
    counts `kill_at` runs, every run it counted is in the raw fragments."""
    space, storage = tmp_path / "killed.py", tmp_path / "results"
    space.write_text(textwrap.dedent(KILL_SPACE))
    exe = Path(sys.executable).with_name("grokscan")
    proc = subprocess.Popen(
        [str(exe), "run", str(space), "--storage", str(storage)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAY_ADDRESS": ""},
        start_new_session=True,
    )
    counted = 0
    try:
        for line in proc.stderr:  # "[killed] 3/8 runs done, ..." once every 2 s while results arrive
            if line.startswith("[killed] ") and int(line.split()[1].split("/")[0]) >= kill_at:
                counted = int(line.split()[1].split("/")[0])
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert counted >= kill_at, "the driver never reported the runs"
    raw = _raw_runs(storage)
    assert len(raw) >= counted and raw["run_id"].is_unique and set(raw["status"]) == {"ok"}


def _result(seed: int) -> RunResult:
    curves = {"step": [0, 50], **{m: [0.0, 1.0] for m in CURVE_COLUMNS}}
    final = {m: 1.0 for m in CURVE_COLUMNS}
    return RunResult(RunConfig(p=7, seed=seed), "ok", 50, 50, 50, final, 0.1, "cpu", 1, None, curves)


def _write_many(root: str, worker: int) -> None:
    store = Store(root)
    for i in range(10):  # overlapping seeds: the same runs written by several processes
        store.write("shared", [_result(seed) for seed in range(i, i + 5)])
        store.write(f"own{worker}", [_result(worker * 100 + i)])


def test_concurrent_writers_lose_and_corrupt_nothing(tmp_path):
    root = str(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(root, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    runs = load_runs(root)
    shared = runs[runs.sweep == "shared"]
    assert sorted(shared.seed) == list(range(14))
    for w in range(4):
        assert sorted(runs[runs.sweep == f"own{w}"].seed) == [w * 100 + i for i in range(10)]
    assert len(pd.read_parquet(tmp_path / "runs")) == 4 * 10 * 6  # every fragment whole and readable
    curves = load_curves(root, "shared")
    assert len(curves) == 14 * 2 and not curves.duplicated(["run_id", "step"]).any()


def test_diverging_run_is_recorded_and_the_sweep_goes_on(ray_local, tmp_path):
    space = tmp_path / "diverge.py"
    space.write_text(
        "from ray import tune\n"
        'param_space = {"p": 11, "width": 16, "steps": 100, "optimizer": "sgd", "weight_decay": 0.0,\n'
        '               "lr": tune.grid_search([1e-2, 1e8])}\n'
    )
    storage = str(tmp_path / "results")
    assert main(["run", str(space), "--storage", storage]) == 0
    runs = load_runs(storage).set_index("lr")
    assert runs.loc[1e8, "status"] == "diverged" and "non-finite" in runs.loc[1e8, "error"]
    assert pd.isna(runs.loc[1e8, "phase"]) and runs.loc[1e8, "steps_run"] < 100
    assert runs.loc[1e-2, "status"] == "ok" and runs.loc[1e-2, "steps_run"] == 100


def test_same_sweep_twice_gives_identical_tables(ray_local, tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    for storage in (a, b):
        assert main(["run", SMOKE, "--storage", storage, "--pack-size", "3"]) == 0
    runs_a, runs_b = (load_runs(s, "smoke").drop(columns=TIMING) for s in (a, b))
    pd.testing.assert_frame_equal(runs_a, runs_b)
    curves_a, curves_b = (load_curves(s, "smoke").drop(columns=["write_id"]) for s in (a, b))
    pd.testing.assert_frame_equal(curves_a, curves_b)


def test_trial_that_fails_for_good_is_stored_as_error_and_exits_1(ray_local, tmp_path, capsys):
    """A trial raising on every attempt (MNIST is not on disk here) ends as status "error" rows with the
    error's last line; the runs of other trials land as usual, and the exit code is 1."""
    space = tmp_path / "fails.py"
    space.write_text(
        "from ray import tune\n"
        'param_space = {"task": tune.grid_search(["mnist", "x+y"]), "p": 11, "width": 16, "steps": 50,\n'
        '               "eval_every": 25}\n'
    )
    storage = str(tmp_path / "results")
    assert main(["run", str(space), "--storage", storage, "--pack-size", "1"]) == 1
    runs = load_runs(storage, "fails").set_index("task")
    assert runs.loc["mnist", "status"] == "error" and "MNIST" in runs.loc["mnist", "error"]
    assert runs.loc["x+y", "status"] == "ok"
    assert "1 failed" in capsys.readouterr().out
