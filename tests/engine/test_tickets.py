"""Grokking Tickets (engine.tickets): masks against numpy, the mask held through every update, the dense
controls' norms, the parent's init regenerated, derived-run identity and pack invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_pack_invariance import assert_identical

from grokscan.config import RunConfig
from grokscan.engine.loop import train_runs
from grokscan.engine.models import Model
from grokscan.engine.pack import Pack
from grokscan.engine.recording import Recording, recording
from grokscan.engine.tickets import magnitude_keep, parent_weights, random_keep
from grokscan.engine.weights import WeightTap
from grokscan.errors import UserError
from grokscan.registry import TASKS

BASE = dict(task="x+y", p=11, width=16, eval_every=10, steps=60, weight_decay=1.0, lr=1e-2)


def _trained_parent(dtype: str = "float32") -> tuple[RunConfig, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A small parent run and its weights at step 0 and at its end, copied out as a sweep stores them."""
    parent = RunConfig(**BASE, dtype=dtype)
    kept: dict[tuple[str, int], dict] = {}
    tap = WeightTap(lambda rid, step, t, final: kept.__setitem__((rid, -1 if final else step), t), [0], True)
    with recording(Recording(on_eval=tap)):
        results = train_runs([parent])
    tap.write_final(results)
    return parent, kept[(parent.run_id, 0)], kept[(parent.run_id, -1)]


@pytest.fixture(scope="module")
def parent():
    return _trained_parent()


def _ticket(parent_cfg: RunConfig, **kw) -> RunConfig:
    fields = {**BASE, "dtype": parent_cfg.dtype, "parent": parent_cfg.run_id, "ticket": "magnitude"}
    return RunConfig(**{**fields, "prune_rate": 0.6, **kw})


def _pack(configs, final):
    with parent_weights(lambda run_id: final):
        return Pack(configs, torch.device("cpu"))


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_mask_matches_numpy(scope):
    rng = np.random.default_rng(0)
    final = {"a": rng.standard_normal((7, 5)), "b": rng.standard_normal((4, 9)) * 3}
    keep = magnitude_keep({n: torch.from_numpy(w) for n, w in final.items()}, 0.6, scope)
    groups = [["a", "b"]] if scope == "global" else [["a"], ["b"]]
    for names in groups:
        scores = np.concatenate([np.abs(final[n]).ravel() for n in names])
        pruned = set(np.argsort(scores)[: int(0.6 * scores.size)].tolist())  # the k smallest
        got = np.concatenate([keep[n].numpy().ravel() for n in names])
        assert {i for i in range(scores.size) if not got[i]} == pruned


def test_random_mask_keeps_each_layers_count():
    rng = np.random.default_rng(1)
    final = {
        "a": torch.from_numpy(rng.standard_normal((20, 10))),
        "b": torch.from_numpy(rng.standard_normal(50)),
    }
    mag = magnitude_keep(final, 0.7, "layer")
    rand = random_keep(mag, seed=3)
    assert all(int(rand[n].sum()) == int(mag[n].sum()) for n in mag)
    assert not torch.equal(rand["a"], mag["a"])
    assert torch.equal(random_keep(mag, seed=3)["a"], rand["a"]) and not torch.equal(
        random_keep(mag, 4)["a"], rand["a"]
    )


def test_the_init_is_the_parents(parent):
    cfg, init, _ = parent
    ticket = _ticket(cfg)
    model = Model(ticket, TASKS.get(ticket.task).dims(ticket))
    regenerated = model.views(model.init_member(ticket.seed, ticket.alpha, torch.float32).unsqueeze(0))
    for name, w in init.items():
        np.testing.assert_array_equal(regenerated[name][0].numpy(), w)


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_masked_weights_stay_zero_through_every_update(parent, optimizer):
    cfg, init, final = parent
    kw = {"momentum": 0.9} if optimizer == "sgd" else {}
    pack = _pack(
        [_ticket(cfg, optimizer=optimizer, **kw), _ticket(cfg, ticket="random", optimizer=optimizer, **kw)],
        final,
    )
    views = pack.model.views(pack.keep)
    masked = pack.keep == 0
    assert masked.any() and set(views) == {"embed", "w0", "b0", "w_out", "b_out"}
    assert (views["b0"] == 1).all() and (views["b_out"] == 1).all()  # biases are never pruned
    n_prunable = sum(w[0].numel() for n, w in views.items() if w.dim() >= 3)
    assert int(masked[0].sum()) == int(0.6 * n_prunable)  # magnitude, global: no ties in random floats
    start = pack.flat.clone()
    for step in range(1, 31):
        pack.train_step(step)
        assert (pack.flat[masked] == 0).all()
        for tensor in pack.opt.state.values():
            if isinstance(tensor, torch.Tensor) and tensor.shape == pack.flat.shape:
                assert (tensor[masked] == 0).all()
    assert not torch.equal(pack.flat[~masked], start[~masked])  # the kept weights do train
    init_row = torch.cat([torch.from_numpy(w).reshape(-1) for w in init.values()])
    np.testing.assert_array_equal(start[0], init_row * pack.keep[0])  # the parent's init, masked


@pytest.mark.parametrize("kind, q", [("dense_l1", 1), ("dense_l2", 2)])
def test_dense_controls_have_the_tickets_norm(parent, kind, q):
    cfg, init, final = parent
    pack = _pack([_ticket(cfg, ticket=kind)], final)
    assert pack.keep is None
    start = pack.model.views(pack.flat)
    names = ["embed", "w0", "w_out"]
    scores = np.concatenate([np.abs(final[n]).ravel() for n in names])
    threshold = np.sort(scores)[int(0.6 * scores.size) - 1]
    ticket = np.concatenate([(init[n] * (np.abs(final[n]) > threshold)).ravel() for n in names])
    dense = np.concatenate([start[n][0].numpy().ravel() for n in names])
    np.testing.assert_allclose(np.linalg.norm(dense, q), np.linalg.norm(ticket, q), rtol=1e-5)
    ratio = np.linalg.norm(ticket, q) / np.linalg.norm(np.concatenate([init[n].ravel() for n in names]), q)
    np.testing.assert_allclose(start["w0"][0].numpy(), init["w0"] * ratio, rtol=1e-5)
    np.testing.assert_array_equal(start["b0"][0].numpy(), init["b0"])  # biases as they were


def test_derived_runs_pack_invariant_float64():
    cfg, _, final = _trained_parent("float64")
    derived = [
        _ticket(cfg),
        _ticket(cfg, ticket="random", weight_decay=0.0),
        _ticket(cfg, ticket="dense_l2", prune_rate=0.8),
        RunConfig(**{**BASE, "dtype": "float64", "weight_decay": 0.0}),  # an ordinary run in the same pack
    ]
    with parent_weights(lambda run_id: final):
        packed = train_runs(derived, pack_size=4)
        alone = [train_runs([c])[0] for c in derived]
    for a, b in zip(alone, packed, strict=True):
        assert_identical(a, b)
    assert packed[0].curves["val_acc"] != packed[2].curves["val_acc"]


def test_identity_and_validation(parent):
    cfg = parent[0]
    ticket = _ticket(cfg)
    assert ticket.run_id not in {
        cfg.run_id,
        _ticket(cfg, prune_rate=0.5).run_id,
        _ticket(cfg, ticket="random").run_id,
    }
    assert ticket.prune_scope == "global" and _ticket(cfg, prune_scope="global").run_id == ticket.run_id
    plain = RunConfig(**BASE, parent=cfg.run_id, prune_rate=0.5)  # no ticket: the fields do not apply
    assert plain.parent is None and plain.prune_rate is None and plain.run_id == cfg.run_id
    for kw, field in [
        ({"parent": "abc"}, "parent"),
        ({"prune_rate": 1.0}, "prune_rate"),
        ({"prune_rate": None}, "prune_rate"),
        ({"prune_scope": "local"}, "prune_scope"),
        ({"ticket": "magnitudes"}, "ticket"),
    ]:
        with pytest.raises(UserError, match=field):
            _ticket(cfg, **kw)
    with pytest.raises(UserError, match="derived from a stored run"):
        Pack([ticket], torch.device("cpu"))


def test_derived_runs_refilled_into_a_running_pack_equal_them_alone_float64(monkeypatch):
    cfg, _, final = _trained_parent("float64")
    joined, add = [], Pack.add
    monkeypatch.setattr(Pack, "add", lambda self, configs: (joined.extend(configs), add(self, configs)))
    plain = dict(BASE, dtype="float64")
    derived = [
        RunConfig(**{**plain, "weight_decay": 0.0, "steps": 20}),  # ends early: the others join its pack
        RunConfig(**{**plain, "lr": 3e-2, "steps": 30}),
        _ticket(cfg),
        _ticket(cfg, ticket="random", weight_decay=0.0),
        _ticket(cfg, ticket="dense_l1", prune_rate=0.8),
        _ticket(cfg, prune_scope="layer", lr=3e-2),
    ]
    with parent_weights(lambda run_id: final):
        refilled = train_runs(derived, pack_size=2)
        alone = [train_runs([c])[0] for c in derived]
    assert any(c.ticket != "none" for c in joined)  # tickets joined a pack that was training
    for a, b in zip(alone, refilled, strict=True):
        assert_identical(a, b)
