"""Curve metrics: what each eval records per run, over the task's full table. Each entry declares its
columns and which runs it applies to, and computes a batched [members, k] tensor from one eval chunk.

The loop needs train_acc, val_acc (step_fit / step_gen, early stop) and train_loss, val_loss (divergence);
those metrics apply to every run. For sequence tasks (labels [m, N, A]: A answer positions) accuracy is
exact match of the whole answer and a row's loss the mean over its positions; `PositionCurves` records
each position's loss and accuracy as columns ``{train,val}_{loss,acc}_pos{i}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grokscan.config import RunConfig
from grokscan.engine.models import Model
from grokscan.engine.recording import Recording, current
from grokscan.registry import CURVE_METRICS, LOSSES, TASKS, Entry


@dataclass
class EvalBatch:
    """One eval chunk of a pack: the pack's model (its parameter layout: `model.views(flat)` names the
    weights), members' flat parameters [m, P], logits [m, N, C] and labels [m, N] over all N table rows,
    per-row losses [m, N], the training-row mask as 0/1 floats [m, N] and its row counts [m] (n_val:
    validation rows). Sequence tasks: logits [m, N, A, C], labels [m, N, A], per-row losses the mean over
    the A answer positions, and `position_losses` [m, N, A] (None for other tasks). `step`: the updates
    the members have taken."""

    cfg: RunConfig
    model: Model
    flat: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor
    losses: torch.Tensor
    train: torch.Tensor
    n_train: torch.Tensor
    n_val: torch.Tensor
    position_losses: torch.Tensor | None = None
    step: int = 0


class CurveMetric(Entry):
    """`opt_in`: recorded only for sweeps that name it (`engine.recording`), not for every run."""

    columns: tuple[str, ...] = ()
    opt_in = False

    def applies(self, cfg: RunConfig) -> bool:
        return True

    def columns_for(self, cfg: RunConfig) -> tuple[str, ...]:
        """The columns recorded for runs shaped like `cfg` (`columns`, unless they depend on the run)."""
        return self.columns

    def compute(self, ev: EvalBatch) -> torch.Tensor:
        raise NotImplementedError


class Accuracy(CurveMetric):
    """Share of training / validation rows whose arg-max logit is the label (sequence tasks: at every
    answer position, exact match of the whole answer)."""

    name, columns = "accuracy", ("train_acc", "val_acc")

    def compute(self, ev: EvalBatch) -> torch.Tensor:
        correct = ev.logits.argmax(-1) == ev.labels
        if correct.dim() == 3:
            correct = correct.all(2)
        correct = correct.to(ev.train.dtype)
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


class PositionCurves(CurveMetric):
    """Per answer position i of a sequence task: mean training / validation loss and accuracy there
    (Nanda & Lieberum 2022 plot 5-digit addition's loss per digit: each digit has its own phase change).
    Columns train_loss_pos{i}, val_loss_pos{i}, train_acc_pos{i}, val_acc_pos{i}, i = 0 .. A-1."""

    name = "positions"
    kinds = ("train_loss", "val_loss", "train_acc", "val_acc")

    def applies(self, cfg: RunConfig) -> bool:
        return TASKS.get(cfg.task).dims(cfg).n_outputs is not None

    def columns_for(self, cfg: RunConfig) -> tuple[str, ...]:
        n = TASKS.get(cfg.task).dims(cfg).n_outputs
        return tuple(f"{kind}_pos{i}" for kind in self.kinds for i in range(n))

    def compute(self, ev: EvalBatch) -> torch.Tensor:
        train, val = ev.train.unsqueeze(2), (1 - ev.train).unsqueeze(2)
        correct = (ev.logits.argmax(-1) == ev.labels).to(ev.train.dtype)
        parts = []
        for value in (ev.position_losses, correct):
            parts += [(value * train).sum(1) / ev.n_train[:, None], (value * val).sum(1) / ev.n_val[:, None]]
        return torch.cat(parts, 1)


for _entry in (Accuracy(), MeanLoss(), WeightNorm(), ZeroLossFraction(), PositionCurves()):
    CURVE_METRICS.register(_entry)


class EveryKEvals(CurveMetric):
    """An opt-in metric computed only at the evals its recording says are due; NaN at the others."""

    def __init__(self, metric: CurveMetric, rec: Recording) -> None:
        self.metric, self.rec, self.name = metric, rec, metric.name

    def columns_for(self, cfg: RunConfig) -> tuple[str, ...]:
        return self.metric.columns_for(cfg)

    def compute(self, ev: EvalBatch) -> torch.Tensor:
        if self.rec.due(ev.step, ev.cfg.eval_every, ev.cfg.steps):
            return self.metric.compute(ev)
        return ev.flat.new_full((len(ev.flat), len(self.columns_for(ev.cfg))), float("nan"))


def metrics_for(cfg: RunConfig) -> list[CurveMetric]:
    """The registered curve metrics that apply to runs shaped like `cfg`, in registration order: every
    default metric, and the opt-in ones the current recording names."""
    rec = current()
    chosen = [m for m in CURVE_METRICS if m.applies(cfg) and (not m.opt_in or m.name in rec.metrics)]
    return [EveryKEvals(m, rec) if m.opt_in and rec.every > 1 else m for m in chosen]
