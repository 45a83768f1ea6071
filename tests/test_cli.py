from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from grokscan.cli import main
from grokscan.config import RunConfig
from grokscan.errors import UserError
from grokscan.result import RunResult
from grokscan.results.store import Store, load_curves, load_runs

SMOKE = str(Path(__file__).parent.parent / "search_spaces" / "smoke.py")


def test_run_then_resume_trains_nothing(ray_local, tmp_path, capsys):
    storage = str(tmp_path / "results")
    assert main(["run", SMOKE, "--storage", storage]) == 0
    first = capsys.readouterr().out
    runs = load_runs(storage, "smoke")
    assert len(runs) == 4 and set(runs["status"]) == {"ok"}
    fragments = list(Path(storage, "runs", "sweep=smoke").glob("part-*.parquet"))
    assert len(fragments) == 1 and len(pq.read_table(fragments[0])) == 4  # compacted once the sweep ended
    assert "4 runs trained, 0 already stored" in first and storage in first
    for command in (f"plot {storage} --sweep smoke", f"report {storage} --sweep smoke", f"serve {storage}"):
        assert f"\n  grokscan {command} " in first  # the summary names the next commands
    curves = load_curves(storage, "smoke")
    assert set(curves["run_id"]) == set(runs["run_id"])
    assert (curves.groupby("run_id")["step"].min() == 0).all()

    assert main(["run", SMOKE, "--storage", storage]) == 0
    assert "0 runs trained, 4 already stored" in capsys.readouterr().out
    assert len(load_runs(storage, "smoke")) == 4

    # an override makes new runs; the old ones stay
    assert main(["run", SMOKE, "--storage", storage, "--set", "steps=100"]) == 0
    assert len(load_runs(storage, "smoke")) == 8

    assert main(["ls", storage]) == 0
    assert "smoke" in capsys.readouterr().out


def test_dry_run_counts_and_writes_nothing(tmp_path, capsys):
    storage = tmp_path / "results"
    assert main(["run", SMOKE, "--storage", str(storage), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 runs" in out and "frac x2" in out and "weight_decay x2" in out
    assert not storage.exists()


def test_dry_run_prints_the_packs_of_the_real_run(tmp_path, capsys, monkeypatch):
    """Both size packs with pack_plan: on CPU 4 packs per Ray CPU slot (the local cores for a dry run)."""
    import grokscan.sweep.pack_plan as pack_plan

    monkeypatch.setattr(pack_plan.os, "cpu_count", lambda: 1)
    assert main(["run", SMOKE, "--storage", str(tmp_path / "r"), "--dry-run"]) == 0
    assert "4 packs of <= 1 runs (sized for 1 local CPU slots)" in capsys.readouterr().out
    assert main(["run", SMOKE, "--storage", str(tmp_path / "r"), "--dry-run", "--pack-size", "3"]) == 0
    assert "2 packs of <= 3 runs" in capsys.readouterr().out  # two fractions: two shapes
    assert not (tmp_path / "r").exists()


def test_gap_names_the_phases(tmp_path, capsys):
    """--gap is an analysis parameter: a run fit at step 50 and generalized at 1500 groks with gap 1000."""
    result = RunResult(RunConfig(p=7), "ok", 50, 1500, 1500, {"val_acc": 1.0}, 0.1, "cpu", 1, None, {})
    Store(str(tmp_path)).write("gaps", [result])
    assert main(["ls", str(tmp_path)]) == 0
    assert "grokking" in capsys.readouterr().out
    assert main(["ls", str(tmp_path), "--gap", "2000"]) == 0
    out = capsys.readouterr().out
    assert "comprehension" in out and "grokking" not in out


def test_only_user_errors_become_exit_2(tmp_path, capsys, monkeypatch):
    """A UserError raised anywhere under the CLI is one line and exit code 2; any other exception is a bug
    and propagates with its traceback (an analysis verb's plain ValueError too)."""
    import grokscan.sweep.runner as runner
    import grokscan.viz.report as report

    def raises(err: Exception):
        def fail(*args, **kwargs):
            raise err

        return fail

    run = ["run", SMOKE, "--storage", str(tmp_path / "results")]
    monkeypatch.setattr(runner, "run_sweep", raises(UserError("bad input: what to change")))
    assert main(run) == 2
    assert capsys.readouterr().err == "grokscan: bad input: what to change\n"
    monkeypatch.setattr(runner, "run_sweep", raises(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(run)
    monkeypatch.setattr(report, "write_report", raises(ValueError("another bug")))
    with pytest.raises(ValueError, match="another bug"):
        main(["report", str(tmp_path / "results")])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--set", "frac=1.5"], "strictly between 0 and 1"),
        (["--set", "optimiser=sgd"], "did you mean 'optimizer'"),
        (["--pack-size", "0"], "--pack-size 0"),
        (["--gpus-per-trial", "-1"], "--gpus-per-trial"),
        (["--gap", "-1"], "--gap -1"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, argv, message):
    storage = tmp_path / "results"
    assert main(["run", SMOKE, "--storage", str(storage), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not storage.exists()


def test_console_script_end_to_end(tmp_path):
    """The installed `grokscan` command, in its own process with its own embedded Ray."""
    storage = tmp_path / "results"
    env = {**os.environ, "RAY_ADDRESS": ""}
    exe = Path(sys.executable).with_name("grokscan")
    done = subprocess.run(
        [str(exe), "run", SMOKE, "--storage", str(storage), "--set", "frac=0.5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 runs trained" in done.stdout and "median step_gen" in done.stdout
    assert len(load_runs(str(storage), "smoke")) == 2


def test_next_commands_quote_the_storage_and_carry_the_gap():
    from grokscan.cli import next_commands

    text = next_commands("my results", "wd_vs_frac", gap=500)
    assert "grokscan plot 'my results' --sweep wd_vs_frac --gap 500" in text
    assert "grokscan report 'my results' --sweep wd_vs_frac --gap 500" in text
    assert "grokscan serve 'my results' --gap 500" in text and "--gap" not in next_commands("r", "s")


def test_serve_refuses_what_it_cannot_serve_in_one_line(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "missing is not a directory" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert "70000" in err and "1 to 65535" in err and len(err.strip().splitlines()) == 1
