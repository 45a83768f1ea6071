"""benchmarks/gpu_check.sh end to end on CPU at toy sizes (GPU_CHECK_DEVICE=cpu GPU_CHECK_TINY=1), in a
Python that cannot import ray, pandas, pyarrow or scipy: the GPU machine it is for has torch only. Every
stage must leave its output under the one folder given."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
BLOCKED = ("ray", "pandas", "pyarrow", "scipy", "seaborn", "dash")


def test_gpu_check_runs_without_ray(tmp_path: Path) -> None:
    blockers = tmp_path / "blockers"
    for name in BLOCKED:
        (blockers / name).mkdir(parents=True)
        (blockers / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked in this test')\n")
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHONPATH": str(blockers),
        "GPU_CHECK_DEVICE": "cpu",
        "GPU_CHECK_TINY": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    log = (out / "gpu_check.log").read_text()
    assert "ray: not installed" in log and "done:" in log
    assert "exit code 0" in (out / "pytest_gpu.txt").read_text()  # the gpu tests skip on CPU
    for workload in ("mlp", "transformer"):
        table = (out / f"throughput_{workload}.txt").read_text()
        rows = [line for line in table.splitlines() if line.startswith(workload)]
        assert any("packed, 1 proc" in r for r in rows) and any("naive (1 model)" in r for r in rows), table
        assert "error" not in table
    assert "ratio (fastest off / fastest on)" in (out / "refill.txt").read_text()
    with open(out / "paper_sweep" / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 4 and {r["status"] for r in runs} == {"ok"}
    assert "4 of 4 runs finished" in (out / "paper_sweep" / "summary.txt").read_text()
