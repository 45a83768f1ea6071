"""Curve metrics: what each eval records per run, over the task's full table. Each entry declares its
columns and which runs it applies to, and computes a batched [members, k] tensor from one eval chunk.

The loop needs train_acc, val_acc (step_fit / step_gen, early stop) and train_loss, val_loss (divergence);
those metrics apply to every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grokscan.config import RunConfig
from grokscan.engine.models import Model
from grokscan.registry import CURVE_METRICS, LOSSES, Entry


@dataclass
class EvalBatch:
    """One eval chunk of a pack: the pack's model (its parameter layout: `model.views(flat)` names the
    weights), members' flat parameters [m, P], logits [m, N, C] and labels [m, N] over all N table rows,
    per-row losses [m, N], the training-row mask as 0/1 floats [m, N] and its row counts [m] (n_val:
    validation rows)."""

    cfg: RunConfig
    model: Model
    flat: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor
    losses: torch.Tensor
    train: torch.Tensor
    n_train: torch.Tensor
    n_val: torch.Tensor


class CurveMetric(Entry):
    columns: tuple[str, ...] = ()

    def applies(self, cfg: RunConfig) -> bool:
        return True

    def compute(self, ev: EvalBatch) -> torch.Tensor:
        raise NotImplementedError


class Accuracy(CurveMetric):
    """Share of training / validation rows whose arg-max logit is the label."""

    name, columns = "accuracy", ("train_acc", "val_acc")

    def compute(self, ev: EvalBatch) -> torch.Tensor:
        correct = (ev.logits.argmax(-1) == ev.labels).to(ev.train.dtype)
        return torch.stack(
            [(correct * ev.train).sum(1) / ev.n_train, (correct * (1 - ev.train)).sum(1) / ev.n_val], 1
        )


class MeanLoss(CurveMetric):
    """Mean training / validation loss of the run's loss function."""

    name, columns = "loss", ("train_loss", "val_loss")

    def compute(self, ev: EvalBatch) -> torch.Tensor:
        train = (ev.losses * ev.train).sum(1) / ev.n_train
        return torch.stack([train, (ev.losses * (1 - ev.train)).sum(1) / ev.n_val], 1)


class WeightNorm(CurveMetric):
    """L2 norm of all parameters (Liu et al. 2022, Omnigrok: grokking tracks the weight norm)."""

    name, columns = "weight_norm", ("weight_norm",)

    def compute(self, ev: EvalBatch) -> torch.Tensor:
        return ev.flat.norm(dim=1, keepdim=True)


class ZeroLossFraction(CurveMetric):
    """Share of training rows whose loss is exactly 0 in the run's dtype: Prieto et al. 2025's softmax
    collapse. Only for losses over a normalized distribution (not MSE)."""

    name, columns = "zero_loss_frac", ("zero_loss_frac",)

    def applies(self, cfg: RunConfig) -> bool:
        return LOSSES.get(cfg.loss).probabilistic

    def compute(self, ev: EvalBatch) -> torch.Tensor:
        return (((ev.losses == 0).to(ev.train.dtype) * ev.train).sum(1) / ev.n_train).unsqueeze(1)


for _entry in (Accuracy(), MeanLoss(), WeightNorm(), ZeroLossFraction()):
    CURVE_METRICS.register(_entry)


def metrics_for(cfg: RunConfig) -> list[CurveMetric]:
    """The registered curve metrics that apply to runs shaped like `cfg`, in registration order."""
    return [m for m in CURVE_METRICS if m.applies(cfg)]
