"""Sweeps as Ray Jobs: `grokscan submit | status | logs` against a cluster's job server (its dashboard).

`grokscan run` started over SSH (`ray exec`) dies with the SSH session; a Ray Job runs on the head node and
outlives the client. `submit_sweep` ships the (already validated) search-space file and this grokscan
package with the job, through its runtime_env: `working_dir` holds only the file, `py_modules` the package,
so the cluster runs the grokscan you have here on the dependencies installed there (`ray up`'s setup). The
entrypoint is `grokscan run FILE --storage ... [run flags]`; its driver joins the cluster through
$RAY_ADDRESS, which Ray's job supervisor sets, and its stdout/stderr are the job's logs.

Token authentication: a cluster started with RAY_AUTH_MODE=token checks a bearer token on every job-server
request. Ray's `JobSubmissionClient` sends one only when this process has RAY_AUTH_MODE=token; here the token
Ray's own loader finds ($RAY_AUTH_TOKEN, the file $RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token) is sent
whenever there is one, unless RAY_AUTH_MODE=disabled.

Exit codes of `status` (and of `logs --follow`, once the job has ended), `EXIT_CODES`: 0 SUCCEEDED, 1 FAILED
(the job's `grokscan run` exited non-zero, or Ray could not start it), 3 PENDING or RUNNING, 4 STOPPED
(`ray job stop`); 2 is bad input (no job server at the address, unknown job), as for every verb.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from grokscan.errors import UserError
from grokscan.sweep.ray_env import ray  # noqa: F401  (Ray's switches, before ray.job_submission loads)
from grokscan.sweep.space import Sweep

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # this grokscan package, shipped with every job
DEFAULT_ADDRESS = "http://127.0.0.1:8265"  # where `ray dashboard cluster.yaml` forwards the head's dashboard
EXIT_CODES = {"SUCCEEDED": 0, "FAILED": 1, "PENDING": 3, "RUNNING": 3, "STOPPED": 4}
CONNECT_TIMEOUT_S = 3.0
EXCLUDES = ["__pycache__", "*.pyc"]
DRIVER_EXITS = {1: "some runs failed", 2: "bad input on the cluster; see its logs"}
RESPONSE_ERROR = "Request failed with status code"  # how JobSubmissionClient words a non-2xx answer


def dashboard_url(address: str) -> str:
    """`address` as the job server's URL: http:// is added when no scheme is given; a UserError for anything
    else than http(s)://HOST[:PORT]."""
    url = address if "://" in address else f"http://{address}"
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or port == -1
        or parts.path not in ("", "/")
    ):
        raise UserError(
            f"--address {address}: expected the job server's http://HOST:PORT, e.g. {DEFAULT_ADDRESS} "
            "(the dashboard's port, 8265 by default)"
        )
    return url.rstrip("/")


def _auth_headers() -> dict[str, str]:
    """The bearer token Ray's loader finds, as an Authorization header; none when there is none."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return {}
    try:
        from ray._raylet import AuthenticationTokenLoader
    except ImportError:  # Ray before 2.52 has no token authentication
        return {}
    loader = AuthenticationTokenLoader.instance()
    if not loader.has_token(ignore_auth_mode=True):
        return {}
    return {"Authorization": f"Bearer {loader.get_raw_token(ignore_auth_mode=True)}"}


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


@contextmanager
def _job_server(address: str, job_id: str | None = None) -> Iterator[None]:
    """Turn the job server's answers that mean bad input (unreachable, not a job server, token refused,
    no such job) into one-line UserErrors."""
    import requests
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError as err:
        missing = "no authentication token was found" in str(err)
        why = "needs Ray's auth token" if missing else "refused this auth token"
        raise UserError(
            f"--address {address}: the cluster {why}; set RAY_AUTH_TOKEN, or put the cluster's token in "
            "~/.ray/auth_token (`ray get-auth-token` on the head prints it)"
        ) from None
    except (ConnectionError, requests.exceptions.RequestException) as err:
        raise UserError(f"--address {address}: no Ray job server answers there ({_one_line(err)})") from None
    except RuntimeError as err:
        text = _one_line(err)
        if job_id is not None and f"{RESPONSE_ERROR} 404" in text:
            raise UserError(f"no job {job_id!r} at {address}; `ray job list --address {address}`") from None
        if text.startswith((RESPONSE_ERROR, "Version check returned 404")):
            raise UserError(f"--address {address}: not a Ray job server, or it refused: {text}") from None
        raise


def job_storage(storage: str) -> str:
    """The store as the job's driver names it: an object-store URI as is, a local path made absolute (the
    driver runs in its own temporary working directory)."""
    return storage if "://" in storage else os.path.abspath(storage)


def entrypoint(space_file: str, storage: str, run_flags: Sequence[str]) -> str:
    """The job's shell command: `grokscan run` on the shipped file, joining the cluster it runs on."""
    return shlex.join(["grokscan", "run", space_file, "--storage", storage, *run_flags])


def submission_id(sweep: Sweep) -> str:
    """A readable, unique job id: grokscan-<sweep>-<UTC time>-<4 hex digits>."""
    return f"grokscan-{sweep.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


def exit_code(info) -> int:
    """grokscan's exit code for a job's status (module docstring)."""
    return EXIT_CODES[str(getattr(info.status, "value", info.status))]


def status_text(job_id: str, info) -> str:
    """One line, plus Ray's message and the driver's exit code when the job did not succeed."""
    status = str(getattr(info.status, "value", info.status))
    meta = info.metadata or {}
    where = ", ".join(
        f"{k} {meta[f'grokscan_{k}']}" for k in ("sweep", "storage") if meta.get(f"grokscan_{k}")
    )
    ran = ""
    if info.start_time:
        end = info.end_time or time.time() * 1000
        ran = f"{'ran' if info.end_time else 'running for'} {(end - info.start_time) / 1000:.0f}s"
    details = "; ".join(part for part in (where, ran) if part)
    lines = [f"{job_id}: {status}" + (f" ({details})" if details else "")]
    if status == "FAILED":
        code = info.driver_exit_code
        if code is not None:
            lines.append(
                f"  grokscan run exited {code}" + (f" ({DRIVER_EXITS[code]})" if code in DRIVER_EXITS else "")
            )
        if info.message:
            lines.append("  " + _one_line(info.message)[:500])
    return "\n".join(lines)


class JobServer:
    """A Ray cluster's job server: submit a sweep, read a job's details and logs.

    Args:
        address: http(s)://HOST:PORT (default: $RAY_API_SERVER_ADDRESS, as for `ray job`, else
            DEFAULT_ADDRESS). A TCP connect is tried first, bounded: an address that never answers (a port
            forward that is not running, a firewalled head) fails in seconds instead of hanging the client.
    """

    def __init__(self, address: str | None = None) -> None:
        self.url = dashboard_url(address or os.environ.get("RAY_API_SERVER_ADDRESS") or DEFAULT_ADDRESS)
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as err:
            raise UserError(
                f"--address {self.url}: no Ray job server answers there ({err.strerror or err}); keep "
                f"`ray dashboard cluster.yaml` running to forward the head's dashboard to {DEFAULT_ADDRESS}, "
                "or pass the head's http://HOST:8265"
            ) from None
        from ray.job_submission import JobSubmissionClient

        with _job_server(self.url):
            self.client = JobSubmissionClient(self.url, headers=_auth_headers())

    def submit(self, sweep: Sweep, storage: str, run_flags: Sequence[str] = ()) -> str:
        """Submit `grokscan run` of `sweep` as a Ray Job; returns the job's submission id.

        Args:
            sweep: from `load_space` with the --set overrides that `run_flags` carries (validated here, so a
                bad file never reaches the cluster).
            storage: results directory or s3://bucket/prefix as the cluster's nodes see it (`job_storage`).
            run_flags: further `grokscan run` flags, passed through (--set, --pack-size, --yes, ...).
        """
        job_id = submission_id(sweep)
        staging = tempfile.mkdtemp(prefix="grokscan-submit-")
        try:
            # Only the file travels as the working directory: whatever lies beside it stays here.
            shutil.copy2(sweep.path, os.path.join(staging, sweep.path.name))
            runtime_env = {"working_dir": staging, "py_modules": [str(PACKAGE_DIR)], "excludes": EXCLUDES}
            metadata = {"grokscan_sweep": sweep.name, "grokscan_storage": storage}
            with _job_server(self.url):
                return self.client.submit_job(
                    entrypoint=entrypoint(sweep.path.name, storage, run_flags),
                    submission_id=job_id,
                    runtime_env=runtime_env,
                    metadata=metadata,
                )
        finally:  # the client has uploaded both packages before submit_job returns
            shutil.rmtree(staging, ignore_errors=True)

    def details(self, job_id: str):
        """The job's `JobDetails` (status, message, driver exit code, metadata); UserError if unknown."""
        with _job_server(self.url, job_id):
            return self.client.get_job_info(job_id)

    def logs(self, job_id: str, follow: bool = False, out: TextIO | None = None) -> None:
        """Print the job's logs so far; with `follow`, stream them until the job ends."""
        out = out or sys.stdout
        self.details(job_id)  # an unknown job is a UserError before any streaming
        if not follow:
            with _job_server(self.url, job_id):
                out.write(self.client.get_job_logs(job_id))
            out.flush()
            return
        import aiohttp

        async def tail() -> None:
            async for chunk in self.client.tail_job_logs(job_id):
                out.write(chunk)
                out.flush()

        try:
            with _job_server(self.url, job_id):
                asyncio.run(tail())
        except (RuntimeError, aiohttp.ClientError) as err:  # the stream broke (e.g. the port forward ended)
            raise UserError(
                f"lost the log stream of {job_id} at {self.url} ({_one_line(err)}); the job goes on"
            ) from None
