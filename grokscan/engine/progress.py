"""Opt-in progress measures (Nanda et al. 2023, "Progress measures for grokking via mechanistic
interpretability"): per-layer weight norms for every model, and for modular addition / subtraction the
Fourier spectrum of the token embedding and the restricted / excluded loss with its key frequencies.

A sweep records them by naming them in its `record` setting (`engine.recording`); they never change a run.

Fourier spectrum: over the p residue tokens' embedding rows E [p, d], frequency k in 0..p//2 holds the
squared norm of E's components along the orthonormal cos(2πkx/p) and sin(2πkx/p) basis vectors (k = 0: the
constant). Nanda et al.'s mainline model uses 5 key frequencies; grokscan's key frequencies are the
KEY_FREQS non-constant frequencies of largest norm in the run's current embedding (Nanda et al. read them
off the trained model: a measure recorded during training has only the current weights).

Restricted / excluded loss: the logits L[a, b, c] over the full p x p table, projected along the (a, b)
directions cos(w_k(a ± b)) and sin(w_k(a ± b)) of the key frequencies w_k = 2πk/p (+ for x+y, - for
x-y). Restricted logits keep only those components (plus each output's mean over the table); excluded
logits remove them. Nanda et al. project the 1-layer transformer's MLP activations and map them to logits
with the bias re-centred; logits are linear in those activations, so projecting the logits is the same
and applies to any model. Nanda et al. evaluate the excluded loss on the training data; both losses are
recorded here on the training and the validation rows, with the run's loss function.
"""

from __future__ import annotations

import math

import torch

from grokscan.config import RunConfig
from grokscan.engine.losses import row_losses
from grokscan.engine.metrics import CurveMetric, EvalBatch
from grokscan.registry import CURVE_METRICS, MODELS, TASKS

KEY_FREQS = 5  # Nanda et al. 2023's mainline model: key frequencies 14, 35, 41, 42, 52 (p = 113)
SHARE_OF_NORM = 0.9  # fourier_n90: fewest frequencies holding this share of the non-constant norm
ADDITIVE = {"x+y": 1, "x-y": -1}  # task -> sign of b in the key directions cos(w(a ± b))


def frequency_power(embed: torch.Tensor, p: int) -> torch.Tensor:
    """[m, p//2 + 1] squared norm per frequency of embedding rows embed [m, >= p, d] (first p rows)."""
    spectrum = torch.fft.rfft(embed[:, :p], dim=1).abs().square().sum(2) / p
    both = torch.ones(spectrum.shape[1], dtype=spectrum.dtype, device=spectrum.device)
    both[1 : (p + 1) // 2] = 2  # cos and sin components (k = 0 and, for even p, k = p/2 have one)
    return spectrum * both


def key_frequencies(power: torch.Tensor) -> torch.Tensor:
    """[m, K] the KEY_FREQS (or fewer, for small p) non-constant frequencies of largest power."""
    k = min(KEY_FREQS, power.shape[1] - 1)
    return power[:, 1:].topk(k, dim=1).indices + 1


def gini(values: torch.Tensor) -> torch.Tensor:
    """[m] Gini coefficient of each row of non-negative values [m, n] (0: equal, near 1: one holds all)."""
    n = values.shape[1]
    ranked = values.sort(dim=1).values
    weights = 2 * torch.arange(1, n + 1, dtype=values.dtype, device=values.device) - n - 1
    return (ranked * weights).sum(1) / (n * ranked.sum(1))


def key_directions(freqs: torch.Tensor, p: int, sign: int) -> torch.Tensor:
    """[m, 2K, p*p] unit vectors cos(w_k(a ± b)), sin(w_k(a ± b)) over the table's rows (a major)."""
    a = torch.arange(p, device=freqs.device)
    phase = (a[:, None] + sign * a[None, :]).reshape(-1).to(torch.float64) * (2 * math.pi / p)
    angles = freqs.to(torch.float64).unsqueeze(2) * phase  # [m, K, p*p]
    dirs = torch.cat([angles.cos(), angles.sin()], 1)
    norms = dirs.norm(dim=2, keepdim=True)
    return torch.where(norms > 1e-9, dirs / norms.clamp_min(1e-9), 0.0)  # sin(w_{p/2}) = 0 for even p


class LayerNorms(CurveMetric):
    """L2 norm of each named weight of the model (`Model.views`): column norm_<name>, '.' written '_'.
    Liu et al. 2022 (Omnigrok) tie grokking to the weight norm; per layer shows which layers shrink."""

    name, opt_in = "layer_norms", True

    def columns_for(self, cfg: RunConfig) -> tuple[str, ...]:
        spec = MODELS.get(cfg.model).spec(cfg, TASKS.get(cfg.task).dims(cfg))
        return tuple(f"norm_{name.replace('.', '_')}" for name in spec)

    def compute(self, ev: EvalBatch) -> torch.Tensor:
        return torch.stack([ev.flat[:, a:b].norm(dim=1) for a, b in ev.model.offsets.values()], 1)


class FourierEmbedding(CurveMetric):
    """The token embedding's spectrum (module doc): fourier_top_share, the share of its squared norm in
    the key frequencies; fourier_gini, the Gini coefficient of the non-constant frequencies' norms; and
    fourier_n90, the fewest frequencies holding 90% of its non-constant squared norm."""

    name, opt_in = "fourier", True
    columns = ("fourier_top_share", "fourier_gini", "fourier_n90")

    def applies(self, cfg: RunConfig) -> bool:
        return cfg.task in ADDITIVE

    def compute(self, ev: EvalBatch) -> torch.Tensor:
        power = frequency_power(ev.model.embedding(ev.flat), ev.cfg.p)
        top = power.gather(1, key_frequencies(power)).sum(1) / power.sum(1)
        varying = power[:, 1:].sort(dim=1, descending=True).values
        reached = varying.cumsum(1) >= SHARE_OF_NORM * varying.sum(1, keepdim=True)
        n90 = (~reached).sum(1) + 1
        return torch.stack([top, gini(varying.sqrt()), n90.to(power.dtype)], 1)


class KeyFrequencyLosses(CurveMetric):
    """Restricted and excluded loss with the key frequencies (module doc), on training and validation
    rows: {train,val}_restricted_loss, {train,val}_excluded_loss."""

    name, opt_in = "key_freq_losses", True
    columns = ("train_restricted_loss", "val_restricted_loss", "train_excluded_loss", "val_excluded_loss")

    def applies(self, cfg: RunConfig) -> bool:
        return cfg.task in ADDITIVE

    def compute(self, ev: EvalBatch) -> torch.Tensor:
        p, logits = ev.cfg.p, ev.logits
        freqs = key_frequencies(frequency_power(ev.model.embedding(ev.flat), p))
        dirs = key_directions(freqs, p, ADDITIVE[ev.cfg.task]).to(logits.dtype)
        kept = torch.bmm(dirs.transpose(1, 2), torch.bmm(dirs, logits))  # [m, N, C]
        restricted = logits.mean(1, keepdim=True) + kept
        out = []
        for variant in (restricted, logits - kept):
            losses = row_losses(ev.cfg.loss, variant, ev.labels)
            out += [(losses * ev.train).sum(1) / ev.n_train, (losses * (1 - ev.train)).sum(1) / ev.n_val]
        return torch.stack(out, 1)


for _entry in (LayerNorms(), FourierEmbedding(), KeyFrequencyLosses()):
    CURVE_METRICS.register(_entry)
