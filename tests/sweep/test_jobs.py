"""`grokscan submit | status | logs`: a sweep as a Ray Job on a real local Ray head with its job server."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from grokscan.cli import _parser, main
from grokscan.cli_jobs import _run_flags

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "search_spaces" / "smoke.py")


def _free_ports(n: int) -> list[int]:
    """n distinct ports free on loopback now (all bound at once, so no two are the same)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tree(pid: int) -> list:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _stop_head(head: subprocess.Popen, temp_dir: str) -> None:
    """Stop this test's head only. `ray stop` takes no --temp-dir: it kills every Ray process on the machine
    by name, other tests' too. So kill the head's process tree (taken while intact; job drivers run in their
    own sessions), its process group, and any process whose command line names this head's temp dir."""
    import psutil

    procs = _tree(head.pid)
    for proc in psutil.process_iter(["cmdline"]):
        if temp_dir in " ".join(proc.info["cmdline"] or []):
            procs.append(proc)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGKILL)
    psutil.wait_procs(procs, timeout=30)
    head.wait(timeout=30)


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def _listening(pid: int) -> list:
    import psutil

    found = []
    for proc in _tree(pid):
        try:
            found += [c for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture
def ray_head() -> Iterator[tuple[str, subprocess.Popen]]:
    """A Ray head with its dashboard and job server, on loopback, in its own process group; yields the job
    server's URL. The temp dir is short: Ray's AF_UNIX socket paths under it must stay below 108 bytes."""
    import requests

    gcs, dashboard, client, agent, *metrics = _free_ports(6)
    temp_dir = tempfile.mkdtemp(prefix="gsjob-", dir="/tmp")
    bin_dir = str(Path(sys.executable).parent)  # the job's entrypoint finds `grokscan` on the head's PATH
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PATH=bin_dir + os.pathsep + env.get("PATH", ""), RAY_USAGE_STATS_ENABLED="0")
    # Every server on loopback (grokscan's switch for its embedded Ray; without it the GCS, raylet and agents
    # bind all interfaces), and the two metrics ports Ray fixes by default made free ones.
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", AUTOSCALER_METRIC_PORT=str(metrics[0]))
    env.update(DASHBOARD_METRIC_PORT=str(metrics[1]))
    argv = [
        *(str(Path(bin_dir, "ray")), "start", "--head", "--block", f"--port={gcs}"),
        *("--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--include-dashboard=true"),
        *("--num-cpus=2", "--node-ip-address=127.0.0.1", f"--temp-dir={temp_dir}"),
        *(f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}"),
        f"--object-store-memory={100 * 2**20}",
    ]
    log = open(os.path.join(temp_dir, "ray-start.log"), "wb")  # noqa: SIM115 (closed in the finally)
    head = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{dashboard}"
    try:
        token = {"Authorization": f"Bearer {os.environ['RAY_AUTH_TOKEN']}"}
        deadline = time.monotonic() + 60
        while True:
            assert head.poll() is None, Path(temp_dir, "ray-start.log").read_text()[-3000:]
            try:
                if requests.get(f"{url}/api/version", headers=token, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the dashboard never answered"
            time.sleep(0.5)
        yield url, head
    finally:
        _stop_head(head, temp_dir)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_submit_runs_the_sweep_as_a_ray_job(ray_head, tmp_path, capsys, monkeypatch):
    """submit -> status until SUCCEEDED -> the 4 runs are in the store, logs hold the run's summary; an
    unknown job and a wrong token are exit 2; every socket of the head's process tree listens on loopback."""
    from grokscan.results.store import load_runs
    from grokscan.sweep import jobs

    url, head = ray_head
    storage = tmp_path / "results"
    assert main(["submit", SMOKE, "--address", url, "--storage", str(storage)]) == 0
    out = capsys.readouterr().out
    job = re.search(r"as Ray job (\S+)", out).group(1)
    assert f"grokscan logs {job} --address {url} --follow" in out

    deadline, code = time.monotonic() + 150, 3
    while code == 3:  # PENDING or RUNNING
        assert time.monotonic() < deadline, capsys.readouterr().out
        time.sleep(1)
        code = main(["status", job, "--address", url])
    status = capsys.readouterr().out.strip().splitlines()
    assert code == 0, status
    assert status[-1].startswith(f"{job}: SUCCEEDED (sweep smoke, storage {storage}")

    runs = load_runs(str(storage), "smoke")
    assert len(runs) == 4 and set(runs["status"]) == {"ok"}
    assert main(["logs", job, "--address", url]) == 0
    logs = capsys.readouterr().out
    assert "smoke: 4 runs trained, 0 already stored, 0 failed" in logs and "median step_gen" in logs
    assert f"grokscan plot {storage} --sweep smoke" in logs

    assert main(["logs", job, "--address", url, "--follow"]) == 0  # an ended job: its logs, then its status
    followed = capsys.readouterr()
    assert "4 runs trained" in followed.out and f"{job}: SUCCEEDED" in followed.err

    assert main(["status", "raysubmit_nope", "--address", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no job 'raysubmit_nope'" in err

    monkeypatch.setattr(jobs, "_auth_headers", lambda: {"Authorization": "Bearer wrong"})
    assert main(["status", job, "--address", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused this auth token" in err

    sockets = _listening(head.pid)
    assert len(sockets) >= 3, sockets  # GCS, raylet, dashboard at least
    assert all(_loopback(c.laddr.ip) for c in sockets), sorted({c.laddr for c in sockets})


def test_submit_refuses_a_bad_file_or_address_before_any_upload(tmp_path, capsys):
    """The file is validated here, with the --set overrides; no job server is needed to refuse it."""
    assert main(["submit", SMOKE, "--set", "frac=1.5", "--address", "http://127.0.0.1:9"]) == 2
    assert "strictly between 0 and 1" in capsys.readouterr().err
    assert main(["submit", str(tmp_path / "missing.py")]) == 2
    assert "no such search-space file" in capsys.readouterr().err
    for address in ("ftp://host:8265", "http://host:port"):
        assert main(["status", "job", "--address", address]) == 2
        assert "expected the job server's http://HOST:PORT" in capsys.readouterr().err
    (port,) = _free_ports(1)  # nothing listens there
    assert main(["logs", "job", "--address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Ray job server answers there" in err


def test_run_flags_pass_through_to_the_entrypoint():
    from grokscan.sweep.jobs import entrypoint, exit_code

    argv = ["submit", SMOKE, "--set", "p=13", "--set", "seed=[0,1]", "--pack-size", "2", "--gap", "500"]
    args = _parser().parse_args([*argv, "--gpus-per-trial", "0.25", "--yes", "--no-compact"])
    flags = _run_flags(args)
    assert flags == [
        *("--set", "p=13", "--set", "seed=[0,1]", "--gpus-per-trial", "0.25", "--pack-size", "2"),
        *("--gap", "500", "--yes", "--no-compact"),
    ]
    command = entrypoint("smoke.py", "s3://b/p", flags)
    assert command.startswith("grokscan run smoke.py --storage s3://b/p --set p=13 --set 'seed=[0,1]'")
    assert _run_flags(_parser().parse_args(["submit", SMOKE])) == []
    codes = {s: exit_code(SimpleNamespace(status=s)) for s in ("SUCCEEDED", "FAILED", "RUNNING", "STOPPED")}
    assert codes == {"SUCCEEDED": 0, "FAILED": 1, "RUNNING": 3, "STOPPED": 4}


def test_the_embedded_ray_never_joins_a_cluster_found_on_the_machine(monkeypatch):
    """Without an address, ray.init() would join the newest `ray start` cluster it finds (which refuses
    num_cpus); grokscan's embedded default asks for a new local instance. Either way its workers start with
    the training malloc setting (glibc reads it from the environment a process starts with), through the
    runtime_env."""
    from grokscan.engine.packing import WORKER_MALLOC_ENV
    from grokscan.sweep import ray_env

    calls = []
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray_env.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray_env.ray, "init", lambda **kw: calls.append(kw))
    ray_env.init_ray(num_cpus=2)
    ray_env.init_ray(address="ray://head:10001")
    assert calls[0]["address"] == "local" and calls[0]["num_cpus"] == 2
    assert calls[1]["address"] == "ray://head:10001" and "num_cpus" not in calls[1]
    assert [c["runtime_env"] for c in calls] == [{"env_vars": WORKER_MALLOC_ENV}] * 2
