"""Safe defaults: the embedded Ray is loopback-only with token auth, no dashboard; results are Parquet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    source = "\n".join(p.read_text() for p in (ROOT / "grokscan").rglob("*.py"))
    assert "pickle" not in source and "read_pickle" not in source
