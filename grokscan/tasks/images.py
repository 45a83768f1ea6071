"""Image classification with pixel inputs: scikit-learn's bundled 8x8 digits (1,797 images, no download),
and MNIST read only from files already under $GROKSCAN_DATA (grokscan never downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from grokscan.config import RunConfig
from grokscan.errors import UserError
from grokscan.registry import TASKS
from grokscan.tasks.base import Dims, Task, TaskData


class DigitsTask(Task):
    name = "digits"

    def dims(self, cfg: RunConfig) -> Dims:
        return Dims(None, 64, 10, 1797)

    def table(self, cfg: RunConfig) -> TaskData:
        from sklearn.datasets import load_digits  # ships with scikit-learn: no download

        digits = load_digits()
        x = torch.tensor(digits.data, dtype=torch.float64) / 16.0
        return TaskData(x, torch.tensor(digits.target, dtype=torch.long), None, 10)


class MnistTask(Task):
    name = "mnist"

    def dims(self, cfg: RunConfig) -> Dims:
        return Dims(None, 784, 10, 70000)

    def table(self, cfg: RunConfig) -> TaskData:
        root = Path(os.environ.get("GROKSCAN_DATA", Path.home() / ".cache" / "grokscan"))
        try:
            from torchvision.datasets import MNIST

            parts = [MNIST(str(root), train=train, download=False) for train in (True, False)]
        except (ImportError, RuntimeError) as err:
            raise UserError(
                f"task 'mnist' needs torchvision and the MNIST files already under {root} (grokscan never "
                f"downloads); set GROKSCAN_DATA to their folder or use task='digits' ({err})"
            ) from err
        x = torch.cat([part.data.reshape(len(part.data), -1) for part in parts]).double() / 255.0
        return TaskData(x, torch.cat([part.targets for part in parts]).long(), None, 10)


TASKS.register(DigitsTask())
TASKS.register(MnistTask())
