"""Each registered task's `dims(cfg)` (known without building the table: pack sizing relies on it) equals
the shapes of the table it builds."""

from __future__ import annotations

import pytest
import torch

from grokscan.config import RunConfig
from grokscan.registry import TASKS

# One config for every task: fields a task does not read are normalized away.
FIELDS = dict(p=7, n_bits=6, k_bits=2, n_samples=40)
SEQUENCE = dict(model="transformer", n_digits=2, vocab=9, seq_len=5, sub_len=3, val_size=50)
ABSENT = {"mnist"}  # its files are not on test machines (the table would raise; dims still work)


@pytest.mark.parametrize("name", [t.name for t in TASKS if t.name not in ABSENT])
def test_dims_match_the_built_table(name: str) -> None:
    task = TASKS.get(name)
    sequence = not task.frac_split  # sequence tasks: answers of several tokens need the transformer
    cfg = RunConfig(task=name, **FIELDS, **(SEQUENCE if sequence else {}))
    dims, data = task.dims(cfg), task.table(cfg)
    assert data.x.shape == (dims.n_rows, dims.n_inputs)
    labels = (dims.n_rows,) if dims.n_outputs is None else (dims.n_rows, dims.n_outputs)
    assert dims.n_outputs is None or sequence
    assert data.y.shape == labels and data.y.dtype == torch.long
    assert (data.n_vocab, data.n_classes) == (dims.n_vocab, dims.n_classes)
    assert cfg.n_rows == dims.n_rows
    assert data.y.min() >= 0 and data.y.max() < dims.n_classes
    if dims.n_vocab is None:
        assert data.x.is_floating_point()
    else:
        assert data.x.dtype == torch.long and data.x.min() >= 0 and data.x.max() < dims.n_vocab


def test_every_task_family_is_covered() -> None:
    names = {t.name for t in TASKS} - ABSENT
    assert {"x+y", "x/y", "mix", "s3", "s6aba", "parity", "digits"} <= names
    assert {"add_digits", "repeat_subseq", "max_of_seq"} <= names


def test_mnist_dims_without_files() -> None:
    dims = TASKS.get("mnist").dims(RunConfig(task="mnist"))
    assert (dims.n_vocab, dims.n_inputs, dims.n_classes, dims.n_rows) == (None, 784, 10, 70000)
