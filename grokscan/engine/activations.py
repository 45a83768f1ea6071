"""Hidden-layer activations, with the tensor copies each keeps for backward (pack memory estimates)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from grokscan.registry import ACTIVATIONS, Entry


class Activation(Entry):
    """`saved`, `made`: tensors per hidden unit autograd keeps for backward, and the forward creates."""

    def __init__(self, name: str, fn: Callable[[torch.Tensor], torch.Tensor], saved: int, made: int) -> None:
        self.name, self.fn, self.saved, self.made = name, fn, saved, made


def _gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact GELU, x * Phi(x). Not F.gelu: its CPU kernel rounds a tensor's vectorized body and scalar tail
    differently, so a member's activations would depend on where its rows fall in the pack's tensor."""
    return 0.5 * x * (1 + torch.erf(x * math.sqrt(0.5)))


ACTIVATIONS.register(Activation("relu", F.relu, 1, 2))
ACTIVATIONS.register(Activation("gelu", _gelu, 4, 5))
ACTIVATIONS.register(Activation("tanh", torch.tanh, 1, 2))
ACTIVATIONS.register(Activation("quadratic", torch.square, 2, 2))
