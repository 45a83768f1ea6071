"""Safe defaults: the embedded Ray is loopback-only with token auth, no dashboard; results are Parquet."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, os, sys
if len(sys.argv) > 1:  # as `grokscan run` does: the space file's `from ray import tune` is ray's first import
    from grokscan.sweep.space import load_space
    load_space(sys.argv[1])
from grokscan.sweep.ray_env import init_ray, ray  # sets Ray's switches before ray loads
init_ray()
node = ray._private.worker._global_node
print(json.dumps({"auth": os.environ.get("RAY_AUTH_MODE"), "dashboard": node.address_info.get("webui_url"),
                  "ip": ray.nodes()[0]["NodeManagerAddress"], "gcs": node.gcs_address}))
ray.shutdown()
"""


SPACE = ROOT / "search_spaces" / "smoke.py"
# Switches grokscan sets in this process (they would reach the probe through its environment).
UNSET = ("RAY_AUTH_MODE", "RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")


@pytest.mark.parametrize("space", [None, SPACE], ids=["init_ray", "space_file_first"])
def test_embedded_ray_is_loopback_only_with_token_auth_and_no_dashboard(space):
    """From a shell that sets nothing: Ray's own default must turn token auth on, and it must work."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    argv = [sys.executable, "-c", PROBE, *([str(space)] if space else [])]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["auth"] == "token" and not facts["dashboard"]
    assert facts["ip"] == "127.0.0.1" and facts["gcs"].startswith("127.0.0.1:")


def test_results_are_never_unpickled():
    # Code that could unpickle: pickle/cloudpickle/joblib imports, read_pickle, torch.load, np.load with
    # allow_pickle (docstrings may name pickle to say it is not used).
    unpickling = re.compile(
        r"^\s*(import|from)\s+(pickle|cloudpickle|dill|joblib)\b|read_pickle|torch\.load\(|allow_pickle", re.M
    )
    for path in (ROOT / "grokscan").rglob("*.py"):
        assert not unpickling.search(path.read_text()), path


LISTEN_SPACE = """
from ray import tune
name = "listen"
pack_size = 1
param_space = {"p": 23, "width": 32, "lr": 1e-2, "steps": 400, "patience": 1000,
               "seed": tune.grid_search(list(range(6)))}
"""


def _loopback(ip: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4-mapped loopback address (::ffff:127.0.0.1)."""
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _listening(pid: int) -> list:
    import psutil

    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    found = []
    for proc in procs:
        try:
            found += [c for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.slow
def test_grokscan_run_listens_on_loopback_only(tmp_path):
    """Every listening socket of a real `grokscan run` and its whole process tree (driver, GCS, raylet,
    workers, agents), taken while trials train, is bound to loopback."""
    from grokscan.results.store import Store

    space, storage = tmp_path / "listen.py", tmp_path / "results"
    space.write_text(LISTEN_SPACE)
    exe = Path(sys.executable).with_name("grokscan")
    env = {
        k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    }
    proc = subprocess.Popen(
        [str(exe), "run", str(space), "--storage", str(storage)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not Store(str(storage)).done_run_ids("listen"):
            assert proc.poll() is None, "grokscan run ended before its trials were seen training"
            time.sleep(0.2)
        sockets = _listening(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert len(sockets) >= 3, sockets  # GCS, raylet and workers at least: the walk sees Ray's servers
    assert all(_loopback(c.laddr.ip) for c in sockets), sorted({c.laddr for c in sockets})
