"""A results directory written by grokscan 0.1 (before the registries and the stable run identity; checked
in as tests/fixtures/results_v0 by `grokscan run search_spaces/smoke.py`) loads and resumes with nothing
retrained."""

from __future__ import annotations

import shutil
from pathlib import Path

from grokscan.cli import main
from grokscan.results.store import load_runs
from grokscan.sweep.space import load_space

ROOT = Path(__file__).resolve().parents[1]


def _fragments(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def test_v0_results_resume_with_zero_runs_trained(tmp_path, capsys):
    store = tmp_path / "results_v0"
    shutil.copytree(ROOT / "tests/fixtures/results_v0", store)
    before = _fragments(store)
    stored = set(load_runs(str(store), "smoke")["run_id"])
    assert {c.run_id for c in load_space(ROOT / "search_spaces/smoke.py").configs} == stored
    assert main(["run", str(ROOT / "search_spaces/smoke.py"), "--storage", str(store)]) == 0
    assert "smoke: 0 runs trained, 4 already stored, 0 failed" in capsys.readouterr().out
    assert _fragments(store) == before
