"""Opt-in progress measures (grokscan.engine.progress) against an independent numpy computation on one
member of a pack: per-layer norms, the embedding's Fourier measures (explicit cos/sin basis, Gini from
mean absolute differences) and the restricted / excluded loss (a numpy forward pass of the MLP and one
projection per key direction); the same alone and in a pack; the every-k option; no columns without a
recording, which changes no training."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grokscan.config import RunConfig
from grokscan.engine.loop import train_runs
from grokscan.engine.recording import Recording, recording
from grokscan.errors import UserError
from grokscan.tasks.split import split

ALL = ("layer_norms", "fourier", "key_freq_losses")
BASE = dict(task="x+y", p=11, width=12, frac=0.6, steps=40, eval_every=10, dtype="float64", lr=1e-2)


def _train(configs, metrics=ALL, every=1):
    seen: dict[tuple[str, int], np.ndarray] = {}

    def keep(model, cfgs, step, flat):
        for cfg, row in zip(cfgs, flat, strict=True):
            seen[cfg.run_id, step] = row.numpy().copy()

    with recording(Recording(metrics=metrics, every=every, on_eval=keep)):
        results = train_runs(configs)
    return results, seen


def _np_fourier(embed: np.ndarray, p: int) -> tuple[float, float, float, list[int]]:
    x = np.arange(p)
    power = [float((embed.sum(0) ** 2).sum() / p)]  # constant basis vector 1/sqrt(p)
    for k in range(1, p // 2 + 1):
        total = 0.0
        for wave in (np.cos, np.sin):
            v = wave(2 * np.pi * k * x / p)
            if np.linalg.norm(v) > 1e-9:
                total += float(((v / np.linalg.norm(v)) @ embed) @ ((v / np.linalg.norm(v)) @ embed))
        power.append(total)
    power = np.array(power)
    order = [int(i) + 1 for i in np.argsort(-power[1:], kind="stable")]
    key = order[:5]
    share = power[key].sum() / (embed**2).sum()
    norms = np.sqrt(power[1:])
    gini = np.abs(norms[:, None] - norms[None, :]).sum() / (2 * len(norms) ** 2 * norms.mean())
    running, n90 = 0.0, 0
    for k in order:
        running, n90 = running + power[k], n90 + 1
        if running >= 0.9 * power[1:].sum():
            break
    return share, gini, n90, key


def _np_mlp_logits(row: np.ndarray, p: int, w: int) -> np.ndarray:
    """Logits [p*p, p] of a depth-1 MLP from its flat row (embed, w0, b0, w_out, b_out in order)."""
    sizes = [("embed", (p, w)), ("w0", (2 * w, w)), ("b0", (w,)), ("w_out", (w, p)), ("b_out", (p,))]
    params, at = {}, 0
    for name, shape in sizes:
        params[name] = row[at : at + math.prod(shape)].reshape(shape)
        at += math.prod(shape)
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    h = np.concatenate([params["embed"][a.ravel()], params["embed"][b.ravel()]], 1)
    h = np.maximum(h @ params["w0"] + params["b0"], 0)
    return h @ params["w_out"] + params["b_out"], params


def _np_ce(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    top = logits.max(1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(1)) + top[:, 0]
    return lse - logits[np.arange(len(labels)), labels]


@pytest.mark.parametrize("task", ["x+y", "x-y"])
def test_measures_match_numpy_on_one_member(task: str) -> None:
    configs = [RunConfig(**{**BASE, "task": task}, seed=s) for s in range(3)]
    results, seen = _train(configs)
    cfg, result, p, w = configs[1], results[1], BASE["p"], BASE["width"]
    sign = 1 if task == "x+y" else -1
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    labels = ((a + sign * b) % p).ravel()
    train = np.zeros(p * p, bool)
    train[split(p * p, cfg.frac, cfg.split_seed)[0].numpy()] = True
    for i, step in enumerate(result.curves["step"]):
        logits, params = _np_mlp_logits(seen[cfg.run_id, step], p, w)
        for name, value in params.items():
            assert result.curves[f"norm_{name}"][i] == pytest.approx(np.linalg.norm(value), rel=1e-12)
        share, gini, n90, key = _np_fourier(params["embed"], p)
        assert result.curves["fourier_top_share"][i] == pytest.approx(share, rel=1e-9)
        assert result.curves["fourier_gini"][i] == pytest.approx(gini, rel=1e-9)
        assert result.curves["fourier_n90"][i] == n90
        kept = np.zeros_like(logits)
        for k in key:
            for wave in (np.cos, np.sin):
                u = wave(2 * np.pi * k * (a + sign * b) / p).ravel()
                u = u / np.linalg.norm(u)
                kept += np.outer(u, u @ logits)
        restricted = _np_ce(logits.mean(0) + kept, labels)
        excluded = _np_ce(logits - kept, labels)
        got = {c: result.curves[c][i] for c in result.curves if "restricted" in c or "excluded" in c}
        assert got["train_restricted_loss"] == pytest.approx(restricted[train].mean(), rel=1e-9)
        assert got["val_restricted_loss"] == pytest.approx(restricted[~train].mean(), rel=1e-9)
        assert got["train_excluded_loss"] == pytest.approx(excluded[train].mean(), rel=1e-9)
        assert got["val_excluded_loss"] == pytest.approx(excluded[~train].mean(), rel=1e-9)
        # the full logits' loss is the run's val_loss: the numpy forward is the model's
        assert result.curves["val_loss"][i] == pytest.approx(_np_ce(logits, labels)[~train].mean(), rel=1e-9)


def test_a_member_measures_the_same_alone_and_in_a_pack() -> None:
    configs = [RunConfig(**BASE, seed=s) for s in range(3)]
    packed, _ = _train(configs)
    (alone,), _ = _train([configs[2]])
    assert alone.curves == packed[2].curves


def test_every_k_evals_and_the_last_step() -> None:
    cfg = RunConfig(**{**BASE, "steps": 50})
    (full,), _ = _train([cfg])
    (sparse,), _ = _train([cfg], every=2)
    assert sparse.curves["step"] == [0, 10, 20, 30, 40, 50]
    for column in ("fourier_top_share", "norm_w0", "val_restricted_loss"):
        got, want = sparse.curves[column], full.curves[column]
        assert [got[i] for i in (0, 2, 4, 5)] == [want[i] for i in (0, 2, 4, 5)]  # due, and the last step
        assert math.isnan(got[1]) and math.isnan(got[3])
    assert sparse.curves["val_loss"] == full.curves["val_loss"]  # the run itself is the same


def test_opt_in_only_and_what_applies() -> None:
    plain = train_runs([RunConfig(**BASE)])[0]
    assert not any(c.startswith(("norm_", "fourier_")) or "restricted" in c for c in plain.curves)
    (recorded,), _ = _train([RunConfig(**BASE)])
    assert all(recorded.curves[c] == plain.curves[c] for c in plain.curves)  # recording changes no training
    tf = RunConfig(task="x*y", p=7, model="transformer", width=8, heads=2, d_mlp=8, steps=10, eval_every=10)
    (result,), _ = _train([tf])
    assert {"norm_embed", "norm_l0_q", "norm_l0_mlp_in_b", "norm_unembed"} <= set(result.curves)
    assert "fourier_top_share" not in result.curves  # x*y: the Fourier basis of residues is not its own


def test_bad_recording() -> None:
    with pytest.raises(UserError, match="'fourrier'.*did you mean 'fourier'"):
        Recording(metrics=("fourrier",))
    with pytest.raises(UserError, match="accuracy"):
        Recording(metrics=("accuracy",))  # a default metric is always recorded
    with pytest.raises(UserError, match="every = 0"):
        Recording(every=0)
