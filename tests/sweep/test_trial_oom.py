"""A trial whose pack runs out of CUDA memory (simulated on CPU): the runs that fit are stored, a run that
does not fit alone is reported as OOM and never stored as "error", and the driver's callback counts it
apart. pack_trial is called directly with Tune's report faked: no Ray cluster."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from grokscan.config import RunConfig
from grokscan.engine.pack import Pack
from grokscan.results.store import Store
from grokscan.sweep import trials
from grokscan.sweep.store_callback import StoreCallback
from grokscan.sweep.trials import OOM, pack_trial, reported_runs

PARITY = dict(task="parity", n_bits=8, k_bits=2, n_samples=None, width=16, eval_every=10)


def test_oom_run_is_reported_not_stored(tmp_path, monkeypatch, capsys) -> None:
    configs = [RunConfig(**{**PARITY, "steps": 30}, seed=s) for s in range(4)]
    big = configs[2]
    step = Pack.train_step

    def train_step(self: Pack, t: int) -> None:
        if any(c.run_id == big.run_id for c in self.configs):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        step(self, t)

    reports: list[dict] = []
    monkeypatch.setattr(Pack, "train_step", train_step)
    monkeypatch.setattr(trials, "tune", SimpleNamespace(report=reports.append))
    monkeypatch.setattr(trials, "ray", SimpleNamespace(get_gpu_ids=lambda: []))
    packs = [[c.to_dict() for c in configs]]
    pack_trial({"pack": 0}, packs, {}, None, str(tmp_path), "oom")

    stored = Store(str(tmp_path)).done_run_ids("oom")
    assert stored == {c.run_id for c in configs if c is not big}
    runs = [r for rep in reports for r in reported_runs(rep)]
    assert [(r.run_id, r.status) for r in runs if r.status != "ok"] == [(big.run_id, OOM)]
    assert f"ran out of CUDA memory on cpu even alone (run_id {big.run_id}" in capsys.readouterr().err

    callback = StoreCallback(Store(str(tmp_path)), "oom", 4, 0, True, lambda cfg: configs)
    for rep in reports + reports[-1:]:  # a re-reported OOM run counts once
        callback.on_trial_result(0, [], None, rep)
    callback.failed_trials.append(({"pack": 0}, "lost node"))  # even then it is no "error" row
    assert callback.statuses == {"ok": 3, OOM: 1} and callback.failed == []
    outcome = callback.outcome(4, 0, 0.0)
    assert outcome.written == 3 and outcome.errors == 0


def test_gpu_trial_sizes_its_packs_on_the_worker(tmp_path, monkeypatch) -> None:
    """On a GPU worker (Ray's GPU ids and assigned resources mocked) the trial trains on cuda with packs
    sized there from its GPU share (pack_size None: engine.memory.default_pack_size on the device); on a
    CPU worker, its runs as one pack."""
    from grokscan.engine import loop

    calls: list[dict] = []
    monkeypatch.setattr(loop, "train_runs", lambda configs, on_finished, **kw: calls.append(kw))
    context = SimpleNamespace(get_assigned_resources=lambda: {"CPU": 1.0, "GPU": 0.5})
    gpu = SimpleNamespace(get_gpu_ids=lambda: [0], get_runtime_context=lambda: context)
    packs = [[RunConfig(seed=s).to_dict() for s in range(5)]]
    monkeypatch.setattr(trials, "tune", SimpleNamespace(report=lambda out: None))
    monkeypatch.setattr(trials, "ray", gpu)
    pack_trial({"pack": 0}, packs, {}, None, str(tmp_path), "gpu")
    monkeypatch.setattr(trials, "ray", SimpleNamespace(get_gpu_ids=lambda: []))
    pack_trial({"pack": 0}, packs, {}, None, str(tmp_path), "gpu")
    assert calls == [dict(device="cuda", pack_size=None, memory_share=0.5), dict(device="cpu", pack_size=5)]


def test_train_runs_sizes_packs_with_the_memory_share(monkeypatch) -> None:
    from grokscan.engine import loop

    asked: list[tuple] = []

    def sized(configs, dev, share):
        asked.append((len(configs), dev.type, share))
        return 2

    monkeypatch.setattr(loop, "default_pack_size", sized)
    results = loop.train_runs(
        [RunConfig(**{**PARITY, "steps": 10}, seed=s) for s in range(3)], memory_share=0.25
    )
    assert asked == [(3, "cpu", 0.25)] and [r.pack_size for r in results] == [2, 2, 1]
