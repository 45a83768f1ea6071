"""What every task entry provides: its table's shapes (known without building it) and the table itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from grokscan.registry import Entry

if TYPE_CHECKING:
    import torch

    from grokscan.config import RunConfig


@dataclass(frozen=True)
class Dims:
    """Shapes of a task's full table. n_vocab is None when inputs are real-valued features."""

    n_vocab: int | None
    n_inputs: int  # tokens (or features) per row
    n_classes: int
    n_rows: int


@dataclass(frozen=True)
class TaskData:
    """A full table. `x` is LongTensor[N, n_inputs] of token ids (< n_vocab) or FloatTensor[N, F]."""

    x: torch.Tensor
    y: torch.Tensor
    n_vocab: int | None
    n_classes: int


class Task(Entry):
    """A task: one full table of examples; a run trains on a fraction of its rows and validates on the rest.

    Subclasses set `name` and `fields` (the RunConfig fields the table depends on), and implement `dims`
    (from the config alone: pack sizing must not build MNIST) and `table`.
    """

    def dims(self, cfg: RunConfig) -> Dims:
        raise NotImplementedError

    def table(self, cfg: RunConfig) -> TaskData:
        raise NotImplementedError

    def cache_key(self, cfg: RunConfig) -> tuple:
        """Configs with equal keys share one built table."""
        return (self.name, *(getattr(cfg, f) for f in self.fields))
