"""Weights in the store (grokscan.results.weights) written by a WeightTap during training: round trip of
named tensors, locally and on a moto S3 server, the final weights found by their step, and the errors for
a bad or unknown run id."""

from __future__ import annotations

import os
import uuid

import boto3
import numpy as np
import pytest
from moto.server import ThreadedMotoServer

import grokscan
from grokscan.config import RunConfig
from grokscan.engine.loop import train_runs
from grokscan.engine.models import Model
from grokscan.engine.recording import Recording, recording
from grokscan.engine.weights import WeightTap
from grokscan.errors import UserError
from grokscan.registry import TASKS
from grokscan.results.weights import load_weights, stored_weights, write_weights

BASE = dict(task="x+y", p=11, width=8, steps=40, eval_every=10, dtype="float64", lr=1e-2)


def _train_and_store(root: str, configs: list[RunConfig], steps=(0, 20)):
    """Train with a tap writing to `root`; also keep every eval's flat rows independently of the tap."""
    seen: dict[tuple[str, int], np.ndarray] = {}
    tap = WeightTap(lambda r, s, t, f: write_weights(root, r, s, t, f), steps, final=True)

    def on_eval(model, cfgs, step, flat):
        for cfg, row in zip(cfgs, flat, strict=True):
            seen[cfg.run_id, step] = row.numpy().copy()
        tap(model, cfgs, step, flat)

    with recording(Recording(on_eval=on_eval)):
        results = train_runs(configs, on_finished=tap.write_final)
    return results, seen


def _named(cfg: RunConfig, row: np.ndarray) -> dict[str, np.ndarray]:
    model = Model(cfg, TASKS.get(cfg.task).dims(cfg))
    return {n: row[a:b].reshape(model.spec[n][0]) for n, (a, b) in model.offsets.items()}


def _check_round_trip(root: str) -> None:
    configs = [RunConfig(**BASE, seed=0), RunConfig(**BASE, seed=1, patience=1, threshold=0.05)]
    results, seen = _train_and_store(root, configs)
    assert results[1].steps_run < results[0].steps_run == 40  # the second run stops early
    for cfg, result in zip(configs, results, strict=True):
        want_steps = [s for s in (0, 20) if s <= result.steps_run]
        assert stored_weights(root, cfg.run_id) == [*want_steps, "final"]
        for step in [*want_steps, None, result.steps_run]:
            got = grokscan.load_weights(root, cfg.run_id, step)
            want = _named(cfg, seen[cfg.run_id, result.steps_run if step is None else step])
            assert list(got) == ["embed", "w0", "b0", "w_out", "b_out"] == list(want)
            for name in want:
                assert got[name].dtype == np.float64 and np.array_equal(got[name], want[name])


def test_round_trip_local(tmp_path) -> None:
    _check_round_trip(str(tmp_path / "results"))
    assert not list((tmp_path / "results").rglob(".tmp-*"))


@pytest.fixture
def s3_root(tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    empty = tmp_path / "aws-empty"
    empty.write_text("")
    for name, value in [("AWS_SHARED_CREDENTIALS_FILE", str(empty)), ("AWS_CONFIG_FILE", str(empty))]:
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    bucket = f"grokscan-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    yield f"s3://{bucket}/sweeps?endpoint_override={host}:{port}&scheme=http", client, bucket
    server.stop()


def test_round_trip_s3(s3_root) -> None:
    root, client, bucket = s3_root
    _check_round_trip(root)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    files = [k for k in keys if not k.endswith("/")]  # pyarrow's create_dir leaves folder markers
    assert len(files) == 5 and all(
        k.startswith("sweeps/weights/") and k.endswith(".safetensors") for k in files
    )


def test_bad_and_unknown_run_ids(tmp_path) -> None:
    root = str(tmp_path)
    with pytest.raises(UserError, match=r"run_id '\.\./x' is invalid: a grokscan run id is 16 hex digits"):
        load_weights(root, "../x")
    cfg = RunConfig(**BASE)
    with pytest.raises(UserError, match=f"no final weights of run {cfg.run_id} under .*stored: none"):
        load_weights(root, cfg.run_id)
    write_weights(root, cfg.run_id, 30, {"w": np.zeros(2)}, final=True)
    write_weights(root, cfg.run_id, 10, {"w": np.ones(2)})
    with pytest.raises(UserError, match=r"no weights at step 20 .*stored: 10, final"):
        load_weights(root, cfg.run_id, 20)
    assert load_weights(root, cfg.run_id, 30)["w"].tolist() == [0.0, 0.0]  # the final file's step
