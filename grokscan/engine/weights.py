"""Copy a pack's weights out as runs train: at listed steps, and each run's final weights when it ends.

A `WeightTap` is a recording's `on_eval` (`engine.recording`): it sees every eval's flat parameters. At a
listed step it hands each member's named weights to `write` at once; for the final weights it keeps the
latest eval's parameters (one device copy) until the trial says which runs ended there (`write_final`).
`write(run_id, step, tensors, final)` gets numpy arrays named as `Model.views` names them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from grokscan.config import RunConfig
from grokscan.engine.models import Model
from grokscan.result import RunResult

Write = Callable[[str, int, dict[str, np.ndarray], bool], None]


def named_weights(model: Model, row: torch.Tensor) -> dict[str, np.ndarray]:
    """One member's weights from its flat parameters [P], by name, shapes without the member dimension."""
    return {name: w[0].detach().cpu().numpy().copy() for name, w in model.views(row.unsqueeze(0)).items()}


class WeightTap:
    """`steps`: steps whose weights are written; `final`: keep the latest eval for `write_final`."""

    def __init__(self, write: Write, steps: Iterable[int] = (), final: bool = False) -> None:
        self.write, self.steps, self.final = write, frozenset(steps), final
        self.latest: tuple[Model, list[str], int, torch.Tensor] | None = None

    def __call__(self, model: Model, configs: Sequence[RunConfig], step: int, flat: torch.Tensor) -> None:
        ids = [c.run_id for c in configs]
        if step in self.steps:
            for run_id, row in zip(ids, flat, strict=True):
                self.write(run_id, step, named_weights(model, row), False)
        if self.final:
            self.latest = (model, ids, step, flat.detach().clone())

    def write_final(self, results: Iterable[RunResult]) -> None:
        """Write the final weights of `results`, runs that ended at the latest eval."""
        if not self.final or self.latest is None:
            return
        model, ids, step, flat = self.latest
        for result in results:
            if result.run_id in ids and result.steps_run == step:
                self.write(result.run_id, step, named_weights(model, flat[ids.index(result.run_id)]), True)
