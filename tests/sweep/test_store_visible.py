"""Trials write the store themselves, so a local results directory must be visible from every Ray node."""

from __future__ import annotations

import pytest

from grokscan.errors import UserError
from grokscan.sweep import ray_env


class _Probe:
    """Stands in for the per-node remote task: answers (sees the probe file, hostname) in node order."""

    def __init__(self, answers: list[tuple[bool, str]]) -> None:
        self.answers, self.paths = iter(answers), []

    def options(self, **kwargs) -> _Probe:
        return self

    def remote(self, path: str) -> tuple[bool, str]:
        self.paths.append(path)
        return next(self.answers)


def _nodes(n: int) -> list[dict]:
    return [{"Alive": True, "NodeID": f"{i:056x}", "NodeManagerAddress": f"10.0.0.{i + 1}"} for i in range(n)]


@pytest.fixture
def cluster(monkeypatch):
    def make(answers):
        probe = _Probe(answers)
        monkeypatch.setattr(ray_env.ray, "nodes", lambda: _nodes(len(answers)))
        monkeypatch.setattr(ray_env.ray, "get", lambda refs, timeout: refs)
        monkeypatch.setattr(ray_env, "_sees", probe)
        return probe

    return make


def test_a_directory_every_node_sees_is_used_as_an_absolute_path(cluster, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    probe = cluster([(True, "head"), (True, "worker")])
    assert ray_env.check_store_visible("results") == str(tmp_path / "results")
    assert len(probe.paths) == 2 and not list((tmp_path / "results").iterdir())  # probe file removed


def test_a_directory_a_node_cannot_see_is_refused_naming_the_node(cluster, tmp_path):
    cluster([(True, "head"), (False, "worker-7")])
    with pytest.raises(UserError, match=r"not visible from Ray node\(s\) 10\.0\.0\.2 \(worker-7\).*s3://"):
        ray_env.check_store_visible(str(tmp_path / "results"))


def test_object_stores_and_single_nodes_need_no_probe(cluster, tmp_path):
    probe = cluster([(False, "only")])
    assert ray_env.check_store_visible("s3://bucket/prefix") == "s3://bucket/prefix"
    assert ray_env.check_store_visible(str(tmp_path)) == str(tmp_path) and probe.paths == []
