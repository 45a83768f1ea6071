"""cluster.yaml passes Ray's own autoscaler validation offline and keeps the security defaults."""

from __future__ import annotations

from pathlib import Path

import yaml

CLUSTER = Path(__file__).parent.parent / "cluster.yaml"


def test_cluster_yaml_is_valid_for_ray_up():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load(CLUSTER.read_text()))
    validate_config(config)  # raises on a schema error
    nodes = config["available_node_types"]
    assert config["head_node_type"] == "head" and nodes["head"]["resources"] == {"CPU": 0}
    assert nodes["gpu_worker"]["max_workers"] >= 1


def test_cluster_yaml_opens_nothing_and_holds_no_credentials():
    text = CLUSTER.read_text()
    config = yaml.safe_load(text)
    for forbidden in ("aws_access_key_id", "aws_secret_access_key", "AKIA", "SecurityGroupIds", "0.0.0.0"):
        assert forbidden not in text, forbidden
    assert all("IamInstanceProfile" in n["node_config"] for n in config["available_node_types"].values())
    assert any("--dashboard-host=127.0.0.1" in c for c in config["head_start_ray_commands"])
