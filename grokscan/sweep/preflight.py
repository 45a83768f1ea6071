"""Checks of the environment a sweep needs, run before Ray starts, so bad input fails fast (exit code 2; no
ray import)."""

from __future__ import annotations

import os
import socket
import uuid

from grokscan.errors import UserError

MAX_RUNS_WITHOUT_CONFIRM = 10_000


def check_storage(storage: str) -> None:
    """A local results directory must exist (it is created) and accept files; object stores are checked
    by their first write."""
    if "://" in storage:
        return
    probe = os.path.join(storage, f".probe-{uuid.uuid4().hex}")
    try:
        os.makedirs(storage, exist_ok=True)
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as err:
        raise UserError(
            f"--storage {storage}: not a writable directory ({err.strerror}); choose another path"
        ) from None


def check_address(address: str | None) -> None:
    """A host:port Ray address must accept connections (3 s); 'auto' and ray:// are left to Ray."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address}: expected host:port (e.g. 10.0.0.5:6379), 'auto' or ray://...")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as err:
        raise UserError(
            f"--address {address}: no Ray cluster answers there ({err.strerror or err}); start one with "
            "`ray up cluster.yaml`, or leave --address out for a local Ray"
        ) from None


def check_size(n_runs: int, confirmed: bool, path: str) -> None:
    """More than MAX_RUNS_WITHOUT_CONFIRM runs need `confirmed` (--yes): a typo in a grid should not start
    a week of training."""
    if n_runs > MAX_RUNS_WITHOUT_CONFIRM and not confirmed:
        raise UserError(
            f"{path}: {n_runs} runs is more than {MAX_RUNS_WITHOUT_CONFIRM}; pass --yes to train them all, "
            "or shrink the grid"
        )
