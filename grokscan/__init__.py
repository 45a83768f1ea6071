"""grokscan: distributed hyperparameter phase diagrams for grokking.

Importing the package loads neither torch nor ray: `train_runs` (torch), `run_sweep` (ray) and the analysis
functions load on first use, so results can be analysed wherever pandas runs.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# MKL's conditional numerical reproducibility: without it, MKL's float64 batched matmul can round a member's
# product differently by batch size on some CPUs (seen on AMD EPYC), which breaks "a run's result does not
# depend on its pack". MKL reads this at its first call, so it is set before grokscan touches torch; no
# measurable cost on the packed step.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from grokscan.config import RunConfig  # noqa: E402
from grokscan.errors import UserError  # noqa: E402
from grokscan.result import RunResult  # noqa: E402

__all__ = [
    "RunConfig",
    "RunResult",
    "UserError",
    "train_runs",
    "load_space",
    "run_sweep",
    "load_runs",
    "load_curves",
    "load_weights",
    "phase_table",
    "fit_scaling",
    "phase_diagram",
    "CriticalFraction",
]
_LAZY = {
    "train_runs": "grokscan.engine.loop",
    "load_space": "grokscan.sweep.space",
    "run_sweep": "grokscan.sweep.runner",
    "load_runs": "grokscan.results.store",
    "load_curves": "grokscan.results.store",
    "load_weights": "grokscan.results.weights",
    "phase_table": "grokscan.results.analysis",
    "fit_scaling": "grokscan.results.analysis",
    "phase_diagram": "grokscan.viz.figures",
    "CriticalFraction": "grokscan.sweep.adaptive",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'grokscan' has no attribute {name!r}")
