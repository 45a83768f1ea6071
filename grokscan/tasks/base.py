"""What every task entry provides: its table's shapes (known without building it), the table itself, and each
run's examples of it (by default the frac split of the table; sequence tasks draw their own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from grokscan.registry import Entry
from grokscan.tasks.split import noisy_labels, split

if TYPE_CHECKING:
    import torch

    from grokscan.config import RunConfig


@dataclass(frozen=True)
class Dims:
    """Shapes of a task's full table. n_vocab is None when inputs are real-valued features.

    n_outputs None: one label per row, which a transformer reads at a "=" token it appends to the row. An
    int A: each row is a whole token sequence (separators included) whose last A positions predict the A
    answer tokens of its label [A] (next-token prediction with teacher forcing: the answer's first A - 1
    tokens are the row's last A - 1 tokens).
    """

    n_vocab: int | None
    n_inputs: int  # tokens (or features) per row
    n_classes: int
    n_rows: int
    n_outputs: int | None = None


@dataclass(frozen=True)
class TaskData:
    """A full table. `x` is LongTensor[N, n_inputs] of token ids (< n_vocab) or FloatTensor[N, F]; `y` is
    LongTensor[N] (or [N, n_outputs] for sequence tasks)."""

    x: torch.Tensor
    y: torch.Tensor
    n_vocab: int | None
    n_classes: int


@dataclass(frozen=True)
class MemberData:
    """One run's evaluated rows: their labels as the run sees them (label noise applied) `y` [N] or [N, A],
    the rows it trains on `train_rows` (LongTensor[n_train], indices into the N rows), and the rows' inputs
    `x` [N, n_inputs] when they are the run's own (None: the task's shared table)."""

    y: torch.Tensor
    train_rows: torch.Tensor
    x: torch.Tensor | None = None


class Task(Entry):
    """A task: one full table of examples; a run trains on a fraction of its rows and validates on the rest.

    Subclasses set `name` and `fields` (the RunConfig fields the table depends on), and implement `dims`
    (from the config alone: pack sizing must not build MNIST) and `table`. A task that draws its examples
    instead (`frac_split = False`: sequence tasks) overrides `n_train`, `eval_rows`, `member_data`,
    `streams` / `fresh_batch` and `data_bytes`.
    """

    frac_split = True  # runs train on round(frac * n_rows) rows of the table (RunConfig checks frac for it)

    def dims(self, cfg: RunConfig) -> Dims:
        raise NotImplementedError

    def table(self, cfg: RunConfig) -> TaskData:
        raise NotImplementedError

    def cache_key(self, cfg: RunConfig) -> tuple:
        """Configs with equal keys share one built table."""
        return (self.name, *(getattr(cfg, f) for f in self.fields))

    def n_train(self, cfg: RunConfig) -> int:
        """Rows a run trains on: round(frac * n_rows) (Python rounding, as in `split`)."""
        return round(cfg.frac * self.dims(cfg).n_rows)

    def eval_rows(self, cfg: RunConfig) -> int:
        """Rows each eval computes per run (training and validation rows): the whole table."""
        return self.dims(cfg).n_rows

    def member_data(self, cfg: RunConfig, table: TaskData) -> MemberData:
        """One run's rows: the permutation split of the table from split_seed, with label noise."""
        rows, _ = split(len(table.y), cfg.frac, cfg.split_seed)
        return MemberData(noisy_labels(table.y, rows, table.n_classes, cfg), rows)

    def streams(self, cfg: RunConfig) -> bool:
        """Whether each update trains on fresh examples (`fresh_batch`) instead of the run's fixed rows."""
        return False

    def fresh_batch(self, cfg: RunConfig, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x [B, n_inputs], y) of update `step` (1-based; step 0: the batch an eval at step 0 reports as
        training rows), a function of the config and step alone; only for runs that `streams`."""
        raise NotImplementedError(f"task {self.name!r} trains on fixed rows")

    def data_bytes(self, cfg: RunConfig) -> int:
        """Device bytes of one run's row data in a pack: row ids (int64), labels (int64) and train mask."""
        return 8 * self.n_train(cfg) + 9 * self.dims(cfg).n_rows
