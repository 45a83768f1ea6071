"""Safe defaults: the embedded Ray is loopback-only with token auth, no dashboard; results are Parquet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, os
from grokscan.tune import init_ray  # first, as `grokscan run` does: it sets Ray's switches before ray loads
import ray
init_ray()
node = ray._private.worker._global_node
print(json.dumps({"auth": os.environ.get("RAY_AUTH_MODE"), "dashboard": node.address_info.get("webui_url"),
                  "ip": ray.nodes()[0]["NodeManagerAddress"], "gcs": node.gcs_address}))
ray.shutdown()
"""


def test_embedded_ray_is_loopback_only_with_token_auth_and_no_dashboard():
    """From a shell that sets nothing: Ray's own default must turn token auth on, and it must work."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["auth"] == "token" and not facts["dashboard"]
    assert facts["ip"] == "127.0.0.1" and facts["gcs"].startswith("127.0.0.1:")


def test_results_are_never_unpickled():
    source = "\n".join(p.read_text() for p in (Path(__file__).parent.parent / "grokscan").glob("*.py"))
    assert "pickle" not in source and "read_pickle" not in source
