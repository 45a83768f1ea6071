"""Per-example losses over a pack's logits [M, B, C]: cross-entropy, StableMax cross-entropy (Prieto et al.
2025) and squared error on one-hot targets (as Liu et al. 2022's Omnigrok MSE runs).

`loss_dtype` (every loss) computes the loss in another dtype than the model's: Prieto et al.'s "float64"
runs are a float32 model whose logits are cast to float64 before the log-softmax (LucasPrietoAl/
grokking-at-the-edge-of-numerical-stability, utils.py:23-28 `cross_entropy_float64`, chosen by
`--softmax_precision 64`, utils.py:269; the model stays at `--train_precision` 32, utils.py:272); their
StableMax is always computed in float64 (utils.py:43-49). The gradient then flows back in the model's dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from grokscan.registry import LOSSES, Entry, cfg_error

LOSS_DTYPES = ("float32", "float64")


class Loss(Entry):
    """`probabilistic`: a cross-entropy over a normalized distribution, whose loss can round to exactly 0
    (Prieto et al.'s softmax collapse; the zero_loss_frac curve applies)."""

    probabilistic = True
    fields = ("loss_dtype",)

    def validate(self, cfg) -> None:
        if cfg.loss_dtype not in (None, *LOSS_DTYPES):
            raise cfg_error(
                "loss_dtype", cfg.loss_dtype, f"one of {', '.join(LOSS_DTYPES)} (or None: `dtype`)"
            )

    def normalize(self, cfg) -> dict:
        # A loss in the model's own dtype is the default run: one id for one behaviour.
        return {"loss_dtype": None} if cfg.loss_dtype == cfg.dtype else {}

    def rows(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-example loss [M, B] for logits [M, B, C] and labels [M, B]."""
        return -self.log_probs(logits).gather(-1, labels.unsqueeze(-1)).squeeze(-1)

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mean_grad(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """d/d logits of the training loss: each member's mean loss over its rows (and answer positions),
        summed over members. logits [M, B(, A), C], labels [M, B(, A)]."""
        logits = logits.detach().requires_grad_(True)
        losses = self.rows(logits, labels)
        losses = losses.mean(2) if losses.dim() == 3 else losses
        (grad,) = torch.autograd.grad(losses.mean(1).sum(), logits)
        return grad


class CrossEntropy(Loss):
    name = "ce"

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.log_softmax(-1)

    def mean_grad(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(softmax - one_hot) / rows, without the loss itself: the training step never reads it, and the
        gather/scatter and log-softmax backward of autograd's path cost as much as the model's output layer.
        Row-wise kernels only, so a member's gradient does not depend on its pack."""
        weight = torch.ones((), dtype=logits.dtype, device=logits.device)
        for n in labels.shape[:0:-1]:  # mean over answer positions, then rows, as autograd's path divides
            weight = weight / n
        grad = logits.detach().softmax(-1).mul_(weight)
        at = labels.unsqueeze(-1)
        return grad.scatter_(-1, at, grad.gather(-1, at) - weight)


class StableMax(Loss):
    name = "stablemax"

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        return stablemax_log_probs(logits)


class MSE(Loss):
    name = "mse"
    probabilistic = False

    def rows(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # squared error on one-hot targets, averaged over classes (nn.MSELoss)
        target = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
        return (logits - target).square().mean(-1)


def stablemax_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log StableMax: s(x) = x + 1 for x >= 0, 1 / (1 - x) for x < 0; p = s / sum(s)."""
    s = torch.where(logits >= 0, logits + 1, 1 / (1 - logits.clamp(max=0)))
    return torch.log(s / s.sum(-1, keepdim=True))


def row_losses(
    kind: str, logits: torch.Tensor, labels: torch.Tensor, dtype: str | None = None
) -> torch.Tensor:
    """Per-example loss [M, B] of the registered loss `kind`, computed in `dtype` (None: the logits')."""
    return LOSSES.get(kind).rows(logits if dtype is None else logits.to(getattr(torch, dtype)), labels)


def logits_grad(
    loss: Loss, logits: torch.Tensor, labels: torch.Tensor, dtype: str | None = None
) -> torch.Tensor:
    """`loss.mean_grad` computed in `dtype` (None: the logits'), returned in the logits' dtype: what
    autograd's path gives when the logits are cast to `dtype` before the loss."""
    if dtype is None or getattr(torch, dtype) == logits.dtype:
        return loss.mean_grad(logits, labels)
    return loss.mean_grad(logits.to(getattr(torch, dtype)), labels).to(logits.dtype)


for _entry in (CrossEntropy(), StableMax(), MSE()):
    LOSSES.register(_entry)
