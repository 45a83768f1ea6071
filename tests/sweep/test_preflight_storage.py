"""Preflight of object stores (`check_storage` on s3:// URIs) against a real S3 server on loopback.

The server is moto's standalone S3 (a test dependency), bound to 127.0.0.1; every request of these tests
stays on loopback: fake credentials, ``AWS_EC2_METADATA_DISABLED`` so the AWS SDK never asks the instance
metadata address, and an ``endpoint_override`` (or ``AWS_ENDPOINT_URL``) on every URI.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
import types
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from grokscan.config import RunConfig
from grokscan.engine.loop import train_runs
from grokscan.errors import UserError
from grokscan.results.store import Store, load_runs
from grokscan.sweep import preflight
from grokscan.sweep.preflight import check_storage

ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET = "testing", "testing"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """host:port of a moto S3 server on loopback (one per module: it starts in about a second)."""
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    assert host == "127.0.0.1"
    yield f"{host}:{port}"
    moto.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake keys and nothing else from the AWS environment: no real profile, no instance metadata."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    empty = tmp_path / "aws-empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)


def _client(server: str, service: str = "s3", key: str = KEY, secret: str = SECRET):
    return boto3.client(
        service,
        endpoint_url=f"http://{server}",
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )


@pytest.fixture
def bucket(server: str) -> str:
    name = f"grokscan-{uuid.uuid4().hex[:12]}"
    _client(server).create_bucket(Bucket=name)
    return name


@contextlib.contextmanager
def _auth_enforced(server: str) -> Iterator[None]:
    """Make moto check signatures and IAM policies (by default it accepts any signed request)."""

    def reset(count: str) -> None:
        request = urllib.request.Request(
            f"http://{server}/moto-api/reset-auth",
            data=count.encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert json.load(answer)["status"] == "ok"

    reset("0")
    try:
        yield
    finally:
        reset("inf")


def _uri(server: str, bucket: str, prefix: str = "sweeps/x") -> str:
    return f"s3://{bucket}/{prefix}?endpoint_override={server}&scheme=http"


def _keys(server: str, bucket: str) -> list[str]:
    listing = _client(server).list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _user(server: str, actions: list[str]) -> tuple[str, str]:
    """Access key of a new moto IAM user allowed only `actions` on every S3 resource. moto names HeadBucket
    its own action (AWS covers it by s3:ListBucket), and since moto 5.2 also HeadObject and the multipart
    upload calls of pyarrow's writes (AWS covers them by s3:GetObject and s3:PutObject)."""
    if "s3:GetObject" in actions:
        actions = [*actions, "s3:HeadObject"]
    if "s3:PutObject" in actions:
        actions = [*actions, "s3:CreateMultipartUpload", "s3:UploadPart", "s3:CompleteMultipartUpload"]
    iam = _client(server, "iam")
    name = f"u{uuid.uuid4().hex[:10]}"
    iam.create_user(UserName=name)
    if actions:
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def test_writable_bucket_passes_and_leaves_no_probe(server, bucket):
    check_storage(_uri(server, bucket))
    # Only the empty directory markers pyarrow's create_dir writes (as the store's first write would).
    assert _keys(server, bucket) == ["sweeps/", "sweeps/x/"]
    check_storage(f"s3://{bucket}?endpoint_override={server}&scheme=http")  # the bucket's root
    assert not [k for k in _keys(server, bucket) if "probe" in k]


def test_missing_bucket_is_named(server):
    uri = _uri(server, "missing-bucket")
    with pytest.raises(UserError, match=r"bucket 'missing-bucket' does not exist; create it") as err:
        check_storage(uri)
    assert str(err.value).startswith(uri + ": ") and "\n" not in str(err.value)


def test_endpoint_from_aws_endpoint_url(server, bucket, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{server}")
    check_storage(f"s3://{bucket}/env-form")
    assert _keys(server, bucket) == ["env-form/"]
    with pytest.raises(UserError, match="bucket 'missing-bucket' does not exist"):
        check_storage("s3://missing-bucket/env-form")


def test_unreachable_endpoint_fails_within_seconds():
    port = _closed_port()
    uri = f"s3://some-bucket/x?endpoint_override=127.0.0.1:{port}&scheme=http"
    start = time.monotonic()
    with pytest.raises(UserError, match=rf"cannot reach the endpoint http://127\.0\.0\.1:{port} ") as err:
        check_storage(uri)
    assert time.monotonic() - start < 5
    assert str(err.value).startswith(uri + ": ") and "endpoint_override" in str(err.value)


def test_silent_endpoint_is_bounded(monkeypatch):
    """An endpoint that accepts connections and never answers (the kernel completes the handshake of a
    listening socket nobody reads): the probe's request timeout ends it, not pyarrow's defaults."""
    monkeypatch.setattr(preflight, "PROBE_REQUEST_TIMEOUT_S", 1.0)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(UserError, match="cannot reach the endpoint .*Timeout"):
            check_storage(f"s3://some-bucket/x?endpoint_override=127.0.0.1:{port}&scheme=http")
        assert time.monotonic() - start < 8


def test_no_credentials(server, bucket, monkeypatch, tmp_path):
    """No key anywhere (a config that only sets a region, metadata off): pyarrow's AWS SDK then sends
    unsigned requests, and the store refuses them. moto, like S3, refuses an unsigned write over a private
    object: here the directory marker the probe's create_dir wrote, which deleting the probe writes again."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    config = tmp_path / "config"
    config.write_text("[default]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    uri = _uri(server, bucket)
    with pytest.raises(UserError) as err:
        check_storage(uri)
    assert str(err.value) == (
        f"{uri}: no credentials found, and the store refused the write (AccessDenied): "
        "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an instance profile"
    )


def test_credentials_from_a_profile_file(server, bucket, monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[ci]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_PROFILE", "ci")
    check_storage(_uri(server, bucket))  # twice: the second finds the markers (private objects) in place
    check_storage(_uri(server, bucket))


def test_rejected_credentials(server, bucket):
    with (
        _auth_enforced(server),
        pytest.raises(UserError, match=r": credentials rejected \(InvalidAccessKeyId: "),
    ):
        check_storage(_uri(server, bucket))


def test_read_only_credentials_are_not_writable(server, bucket, monkeypatch):
    key, secret = _user(server, ["s3:ListBucket", "s3:HeadBucket", "s3:GetObject"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    uri = _uri(server, bucket)
    with _auth_enforced(server), pytest.raises(UserError) as err:
        check_storage(uri)
    assert str(err.value) == (
        f"{uri}: not writable (AccessDenied: Access Denied); grant these credentials s3:ListBucket, "
        f"s3:GetObject, s3:PutObject and s3:DeleteObject on bucket '{bucket}'"
    )


def test_write_without_delete_rights_is_named(server, bucket, monkeypatch):
    key, secret = _user(server, ["s3:ListBucket", "s3:HeadBucket", "s3:GetObject", "s3:PutObject"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    pattern = r": wrote the probe object \S+/\.grokscan-probe-\w+ but cannot delete it \(AccessDenied: Access"
    with _auth_enforced(server), pytest.raises(UserError, match=pattern):
        check_storage(_uri(server, bucket))


@pytest.mark.parametrize("uri", ["nosuchscheme://b/p", "s3://b/p?no_such_option=1"])
def test_uri_pyarrow_cannot_open(uri):
    with pytest.raises(UserError, match=r"not a storage URI pyarrow can open"):
        check_storage(uri)


def test_cli_run_exits_2_before_ray(server, monkeypatch, capsys):
    from grokscan.cli import main

    def must_not_run(*args, **kwargs):
        raise AssertionError("run_sweep was called")

    monkeypatch.setitem(sys.modules, "grokscan.sweep.runner", types.SimpleNamespace(run_sweep=must_not_run))
    ray_was_up = "ray" in sys.modules and sys.modules["ray"].is_initialized()  # by an earlier test
    uri = _uri(server, "missing-bucket")
    code = main(["run", str(ROOT / "search_spaces" / "smoke.py"), "--storage", uri])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert lines == [
        f"grokscan: {uri}: bucket 'missing-bucket' does not exist; create it or fix the bucket name"
    ]
    assert ray_was_up or "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


def test_results_land_in_the_bucket(server, bucket):
    uri = _uri(server, bucket, "results")
    check_storage(uri)
    configs = [RunConfig(task="x+y", p=5, width=8, steps=20, eval_every=10, seed=s) for s in (0, 1)]
    Store(uri).write("smoke", train_runs(configs))
    runs = load_runs(uri, sweep="smoke")
    assert sorted(runs["run_id"]) == sorted(c.run_id for c in configs)
    assert set(runs["sweep"]) == {"smoke"}
    parts = [k for k in _keys(server, bucket) if k.endswith(".parquet")]
    assert {k.rsplit("/", 1)[0] for k in parts} == {"results/runs/sweep=smoke", "results/curves/sweep=smoke"}
