"""Per-example losses: cross-entropy, StableMax (against its formula, finite for huge logits), MSE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from grokscan.engine.losses import row_losses, stablemax_log_probs
from grokscan.registry import LOSSES


def _stablemax_reference(logits: list[float]) -> list[float]:
    s = [x + 1 if x >= 0 else 1 / (1 - x) for x in logits]
    total = sum(s)
    return [math.log(v / total) for v in s]


def test_stablemax_matches_formula() -> None:
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 5, 7, generator=gen, dtype=torch.float64) * 4
    logits[0, 0, :3] = torch.tensor([0.0, -0.0, 50.0], dtype=torch.float64)
    got = stablemax_log_probs(logits)
    want = torch.tensor(
        [[_stablemax_reference(row) for row in m] for m in logits.tolist()], dtype=torch.float64
    )
    assert_close(got, want, rtol=1e-13, atol=1e-13)
    assert_close(got.exp().sum(-1), torch.ones(2, 5, dtype=torch.float64), rtol=1e-13, atol=0)


@pytest.mark.parametrize("dtype,scale", [(torch.float32, 1e6), (torch.float32, 1e12), (torch.float64, 1e100)])
def test_stablemax_gradient_finite_for_large_logits(dtype: torch.dtype, scale: float) -> None:
    logits = (torch.tensor([[[1.0, -1.0, 0.5, -0.25, 0.0]]], dtype=dtype) * scale).requires_grad_(True)
    for label in range(5):
        loss = row_losses("stablemax", logits, torch.tensor([[label]])).sum()
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(grad).all(), (label, grad)
    # softmax saturates here (loss of the top class is exactly 0); stablemax still has a gradient
    top = row_losses("stablemax", logits, torch.tensor([[0]])).sum()
    assert torch.autograd.grad(top, logits)[0].abs().sum() > 0


def test_row_losses_ce_equals_cross_entropy() -> None:
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 8, 6, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 6, (3, 8), generator=gen)
    got = row_losses("ce", logits, labels)
    want = F.cross_entropy(logits.reshape(-1, 6), labels.reshape(-1), reduction="none").view(3, 8)
    assert got.shape == (3, 8)
    assert_close(got, want, rtol=1e-14, atol=1e-14)


def test_row_losses_mse_equals_mse_loss_on_one_hot() -> None:
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(3, 8, 6, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 6, (3, 8), generator=gen)
    one_hot = torch.zeros(3, 8, 6, dtype=torch.float64)
    for m in range(3):
        for b in range(8):
            one_hot[m, b, labels[m, b]] = 1.0
    want = torch.nn.MSELoss(reduction="none")(logits, one_hot).mean(-1)
    assert_close(row_losses("mse", logits, labels), want, rtol=1e-14, atol=1e-14)
    assert_close(row_losses("mse", logits, labels).mean(), torch.nn.MSELoss()(logits, one_hot))


def test_row_losses_stablemax_is_negative_log_prob() -> None:
    logits = torch.tensor([[[2.0, -1.0, 0.0]]], dtype=torch.float64)
    got = row_losses("stablemax", logits, torch.tensor([[2]]))
    assert_close(got, torch.tensor([[-math.log(1 / (3 + 0.5 + 1))]], dtype=torch.float64))


@pytest.mark.parametrize("kind", ["ce", "stablemax", "mse"])
@pytest.mark.parametrize("shape", [(3, 8), (3, 8, 4)], ids=["rows", "answer-positions"])
def test_mean_grad_is_the_gradient_of_the_training_loss(kind: str, shape: tuple[int, ...]) -> None:
    """mean_grad (CE's closed form softmax - one_hot; others by autograd) against autograd of each member's
    mean loss summed over members, written with torch.nn.functional."""
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(*shape, 6, generator=g, dtype=torch.float64) * 3).requires_grad_(True)
    labels = torch.randint(0, 6, shape, generator=g)
    flat_logits, flat_labels = logits.reshape(-1, 6), labels.reshape(-1)
    if kind == "ce":
        rows = F.cross_entropy(flat_logits, flat_labels, reduction="none")
    elif kind == "mse":
        rows = F.mse_loss(flat_logits, F.one_hot(flat_labels, 6).double(), reduction="none").mean(1)
    else:
        rows = -stablemax_log_probs(flat_logits).gather(1, flat_labels.unsqueeze(1)).squeeze(1)
    (want,) = torch.autograd.grad(rows.view(3, -1).mean(1).sum(), logits)
    assert_close(LOSSES.get(kind).mean_grad(logits, labels), want, rtol=1e-12, atol=1e-15)
