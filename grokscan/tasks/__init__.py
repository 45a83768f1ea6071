"""Tasks: one file per family, each entry registered in `grokscan.registry.TASKS` when imported.

`TASKS.get(name).table(cfg)` builds a full table; `dims(cfg)` gives its shapes without building it.
"""

from grokscan.tasks import images, modular, parity, permutation  # noqa: F401  (register the entries)
from grokscan.tasks.base import Dims, Task, TaskData

__all__ = ["Dims", "Task", "TaskData"]
