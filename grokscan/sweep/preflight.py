"""Checks of the environment a sweep needs, run before Ray starts, so bad input fails fast (exit code 2; no
ray import)."""

from __future__ import annotations

import argparse
import configparser
import os
import re
import socket
import uuid
from typing import TYPE_CHECKING

from grokscan.errors import UserError

if TYPE_CHECKING:
    from pyarrow import fs as pafs

MAX_RUNS_WITHOUT_CONFIRM = 10_000

# Bounds on the S3 probe (pyarrow's URIs cannot set them): a preflight should answer within seconds even
# when the endpoint accepts connections and never replies.
PROBE_CONNECT_TIMEOUT_S = 5.0
PROBE_REQUEST_TIMEOUT_S = 10.0  # pyarrow: a request stalled (under 1 byte/s) this long fails
PROBE_MAX_ATTEMPTS = 2

_AWS_ERROR = re.compile(r"AWS Error (\w+) during (\w+) operation: ?([^(]*)")
_NETWORK = ("NETWORK_CONNECTION", "REQUEST_TIMEOUT")
_BAD_CREDENTIALS = (
    "INVALID_ACCESS_KEY_ID",
    "SIGNATURE_DOES_NOT_MATCH",
    "EXPIRED_TOKEN",
    "INVALID_TOKEN",
    "INVALID_CLIENT_TOKEN_ID",
    "UNRECOGNIZED_CLIENT",
    "MISSING_AUTHENTICATION_TOKEN",
)
# Keys of a profile (~/.aws/credentials or config) from which the AWS SDK gets credentials.
_CREDENTIAL_KEYS = {
    "aws_access_key_id",
    "role_arn",
    "credential_process",
    "sso_session",
    "sso_start_url",
    "web_identity_token_file",
}


def check_storage(storage: str) -> None:
    """Check that the results store exists (a local directory is created) and accepts files.

    A local path must be a writable directory. An object-store URI (anything
    `pyarrow.fs.FileSystem.from_uri` accepts, resolved exactly as `grokscan.results.store` resolves it)
    is checked by doing what the store will do: write a small probe object under the prefix
    (``<prefix>/.grokscan-probe-<uuid>``, which no reader matches), create the prefix as a directory (on
    S3: the empty ``<prefix>/`` markers the store's first write would leave anyway) and delete the probe.
    So an unreachable endpoint, a missing bucket, missing or rejected credentials and a read-only prefix
    each fail here instead of mid-sweep. On S3 the probe uses the URI's options with bounded timeouts and
    retries (``PROBE_*`` above): a refused connection fails in about a second, an endpoint that never
    answers in about 20 s. (An S3 URI with neither ``region=`` nor an endpoint makes pyarrow look up the
    bucket's region while opening it, under the AWS SDK's own timeouts.)

    S3-compatible servers (MinIO, Ceph, moto, ...): name the endpoint in the URI,
    ``s3://bucket/prefix?endpoint_override=127.0.0.1:9000&scheme=http`` (also ``region=...``), or set
    ``AWS_ENDPOINT_URL=http://127.0.0.1:9000``; the sweep's store reads the same URI and environment.
    Credentials come from the AWS SDK's usual chain: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``
    (and ``AWS_SESSION_TOKEN``), ``~/.aws/credentials``/``~/.aws/config`` (``AWS_PROFILE``), web identity,
    container credentials, then the EC2 instance profile (unless ``AWS_EC2_METADATA_DISABLED=true``).

    Args:
        storage: A local directory, or a URI such as ``s3://bucket/prefix``.

    Raises:
        UserError: one line naming the store, what is wrong and the fix.
    """
    if "://" in storage:
        _check_object_store(storage)
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


def _check_object_store(storage: str) -> None:
    import pyarrow as pa

    from grokscan.results.store import _resolve  # the store's own URI handling, so both see one store

    try:
        filesystem, base = _resolve(storage)
    except pa.ArrowInvalid as err:
        raise UserError(f"{storage}: not a storage URI pyarrow can open ({_one_line(err)})") from None
    except OSError as err:  # an S3 URI without region=: pyarrow asks AWS for the bucket's region
        raise _store_error(storage, None, _base_of(storage), err) from None
    options = _s3_options(filesystem)
    if options is not None:
        filesystem = _bounded_s3(options)
    probe = f"{base}/.grokscan-probe-{uuid.uuid4().hex}"
    try:
        # The write first: S3 explains a refused PUT (error code and text); a HEAD's answer has no body.
        with filesystem.open_output_stream(probe) as f:
            f.write(b"grokscan preflight probe; safe to delete\n")
        filesystem.create_dir(base, recursive=True)  # as Store._put does before each fragment
    except OSError as err:
        raise _store_error(storage, options, base, err) from None
    try:
        filesystem.delete_file(probe)
    except OSError as err:
        raise _store_error(storage, options, base, err, probe) from None


def _base_of(storage: str) -> str:
    """'bucket/prefix' of 'scheme://bucket/prefix?query', for messages when pyarrow could not open it."""
    return storage.split("://", 1)[1].split("?", 1)[0].strip("/")


def _s3_options(filesystem: pafs.FileSystem) -> dict | None:
    """The constructor options of an S3FileSystem (None for other filesystems)."""
    from pyarrow import fs as pafs

    s3 = getattr(pafs, "S3FileSystem", None)  # absent from pyarrow builds without S3
    if s3 is None or not isinstance(filesystem, s3):
        return None
    _, (options,) = filesystem.__reduce__()  # the pickling protocol: every option as a keyword
    return dict(options)


def _bounded_s3(options: dict) -> pafs.FileSystem:
    """The same S3 filesystem with bounded timeouts and retries (a URI cannot set them)."""
    from pyarrow import fs as pafs

    options = dict(options)
    for key, bound in (
        ("connect_timeout", PROBE_CONNECT_TIMEOUT_S),
        ("request_timeout", PROBE_REQUEST_TIMEOUT_S),
    ):
        if options.get(key, -1) <= 0:  # -1: unset, the SDK's default
            options[key] = bound
    options["retry_strategy"] = pafs.AwsStandardS3RetryStrategy(max_attempts=PROBE_MAX_ATTEMPTS)
    return pafs.S3FileSystem(**options)


def _is_network(text: str) -> bool:
    found = _AWS_ERROR.search(text)
    return "curlCode" in text or (found is not None and found.group(1) in _NETWORK)


def _store_error(
    storage: str, options: dict | None, base: str, err: OSError, written: str | None = None
) -> UserError:
    """The one-line UserError for a failed probe, from pyarrow's message and its AWS error code; `written`:
    the probe object, when only deleting it failed."""
    text = _one_line(err)
    found = _AWS_ERROR.search(text)
    code, detail = (found.group(1), found.group(3).strip() or "no detail") if found else ("", text)
    detail = detail.split("; Details:", 1)[0]  # curl repeats its error with the address
    aws_code = "".join(word.capitalize() for word in code.split("_")) or "error"  # AWS's own spelling
    bucket = base.split("/", 1)[0]
    missing = re.search(r"[Bb]ucket '([^']+)' not found", text)
    if _is_network(text):
        return UserError(
            f"{storage}: cannot reach the endpoint {_endpoint(options)} ({detail}); check the network and "
            "the endpoint (endpoint_override=HOST:PORT&scheme=http in the URI, or AWS_ENDPOINT_URL)"
        )
    if code == "NO_SUCH_BUCKET" or missing:
        name = missing.group(1) if missing else bucket
        return UserError(f"{storage}: bucket '{name}' does not exist; create it or fix the bucket name")
    if options is not None and not options.get("anonymous") and not _has_credentials(options):
        # The SDK then signs with an instance profile's credentials if it finds one, else sends unsigned.
        if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
            found_none = "no credentials found"
        else:
            found_none = "no credentials found in AWS_* variables or ~/.aws, nor a working instance profile"
        return UserError(
            f"{storage}: {found_none}, and the store refused the write ({aws_code}): set "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an instance profile"
        )
    if code in _BAD_CREDENTIALS:
        return UserError(
            f"{storage}: credentials rejected ({aws_code}: {detail}); check AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, or AWS_PROFILE and ~/.aws"
        )
    rights = (
        f"s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on bucket '{bucket}'"
        if options is not None
        else "read, write and delete rights on the prefix"
    )
    if written is not None:
        return UserError(
            f"{storage}: wrote the probe object {written} but cannot delete it ({aws_code}: {detail}); grant "
            f"these credentials {rights} (`grokscan compact` deletes), then delete that object"
        )
    if code == "ACCESS_DENIED":
        return UserError(f"{storage}: not writable ({aws_code}: {detail}); grant these credentials {rights}")
    return UserError(f"{storage}: the probe write failed ({text}); check the store and its permissions")


def _endpoint(options: dict | None) -> str:
    if options is None:
        return "of this URI"
    endpoint = options.get("endpoint_override") or f"s3.{options.get('region') or 'us-east-1'}.amazonaws.com"
    return endpoint if "://" in endpoint else f"{options.get('scheme') or 'https'}://{endpoint}"


def _has_credentials(options: dict) -> bool:
    """Whether the AWS SDK's credential chain has a source other than the instance profile (which only a
    network call could tell): keys or a role in the URI, the environment, or the profile's credential keys
    (a [default] that only sets a region does not count)."""
    env = os.environ
    if options.get("access_key") or options.get("role_arn"):
        return True
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return True
    if env.get("AWS_WEB_IDENTITY_TOKEN_FILE") or any(k.startswith("AWS_CONTAINER_CREDENTIALS_") for k in env):
        return True
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    files = (
        (env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials", profile),
        (
            env.get("AWS_CONFIG_FILE") or "~/.aws/config",
            profile if profile == "default" else f"profile {profile}",
        ),
    )
    for path, section in files:
        parser = configparser.RawConfigParser()
        try:
            parser.read(os.path.expanduser(path))
        except configparser.Error:
            return True  # unreadable to us, maybe not to the SDK: do not claim there is nothing
        if parser.has_section(section) and _CREDENTIAL_KEYS & set(parser.options(section)):
            return True
    return False


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


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


def check_numbers(args: argparse.Namespace) -> None:
    """The numeric flags of `run` and `submit`: --pack-size, --max-concurrent, --gpus-per-trial."""
    for flag, value in (("--pack-size", args.pack_size), ("--max-concurrent", args.max_concurrent)):
        if value is not None and value < 1:
            raise UserError(f"{flag} {value}: must be a positive integer")
    if args.gpus_per_trial is not None and not 0 <= args.gpus_per_trial <= 1:
        from grokscan.sweep.space import GPUS_ALLOWED

        raise UserError(f"--gpus-per-trial {args.gpus_per_trial:g}: {GPUS_ALLOWED}")
