"""Models written with a leading member dimension: a pack of M runs is one model with weights [M, ...]."""

from grokscan.engine.models import mlp, transformer, two_layer_relu  # noqa: F401  (register the entries)
from grokscan.engine.models.layout import Architecture, Model

__all__ = ["Architecture", "Model"]
