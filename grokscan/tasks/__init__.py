"""Tasks: one file per family, each entry registered in `grokscan.registry.TASKS` when imported.

`TASKS.get(name).table(cfg)` builds a full table; `dims(cfg)` gives its shapes without building it. The
sequence tasks (`add_digits`, `repeat_subseq`, `max_of_seq`; `grokscan.tasks.sequence`) draw their examples
in a finite or an infinite regime instead of splitting a table.
"""

from grokscan.tasks import (  # noqa: F401  (register the entries)
    add_digits,
    images,
    max_of_seq,
    modular,
    parity,
    permutation,
    repeat_subseq,
    xor_cluster,
)
from grokscan.tasks.base import Dims, MemberData, Task, TaskData

__all__ = ["Dims", "MemberData", "Task", "TaskData"]
