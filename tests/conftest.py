from __future__ import annotations

import os
import secrets

import pytest

# Every Ray process the tests start (embedded instance, cluster_utils nodes, CLI subprocesses) must agree on
# the auth mode; token auth stays on, as in normal use. The token is given too: ray.init writes
# ~/.ray/auth_token when it is missing, but a cluster_utils head node started first on a fresh machine
# does not, and its GCS then aborts.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture
def ray_local():
    """One small embedded Ray shared by the tests that need it (started on first use)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            object_store_memory=80 * 2**20,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
        )
    return ray


def pytest_sessionfinish(session, exitstatus):
    import sys

    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()
