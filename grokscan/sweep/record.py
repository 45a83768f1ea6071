"""A search-space file's `record` setting: what its runs record beyond the default curves.

    record = {"metrics": ["fourier", "key_freq_losses"], "every": 4, "weights": ["final", 0, 1000]}

`metrics`: opt-in curve metrics by registered name (`grokscan.engine.progress`), computed at every
`every`-th eval and at the budget's last step. `weights`: store each run's weights (safetensors,
`grokscan.results.weights`) at the end ("final") and/or after the listed steps (eval steps: multiples of
eval_every). Recording changes no run's training, so it is not part of any run's config or id: a run
already stored under the sweep's name is not trained again to record more (use another sweep name or
results directory for that).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from grokscan.config import RunConfig
from grokscan.engine.recording import Recording
from grokscan.errors import UserError
from grokscan.registry import MODELS, TASKS, closest

KEYS = ("metrics", "every", "weights")
BYTES = {"float32": 4, "float64": 8}


def parse_record(path: Path, value: Any) -> dict[str, Any]:
    """The validated `record` setting as a plain dict (it travels to Ray trials); {} when not set."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{path}: record = {value!r}: must be a dict like {{'metrics': ['fourier']}}")
    for key in value:
        if key not in KEYS:
            raise UserError(f"{path}: record has unknown key {key!r}{closest(key, KEYS)}")
    metrics = value.get("metrics", ())
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise UserError(f"{path}: record['metrics'] = {metrics!r}: must be a list of metric names")
    try:
        rec = Recording(metrics=tuple(metrics), every=value.get("every", 1))
    except UserError as err:
        raise UserError(f"{path}: {err}") from None
    return {"metrics": rec.metrics, "every": rec.every, "weights": _weights(path, value.get("weights", ()))}


def _weights(path: Path, value: Any) -> tuple:
    """("final"?, *steps ascending) from a list of "final" and steps >= 0."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise UserError(f"{path}: record['weights'] = {value!r}: must be a list of 'final' and/or steps")
    for item in value:
        if item != "final" and (isinstance(item, bool) or not isinstance(item, int) or item < 0):
            raise UserError(f"{path}: record['weights'] item {item!r}: must be 'final' or a step >= 0")
    steps = sorted({item for item in value if item != "final"})
    return (*(["final"] if "final" in value else []), *steps)


def check_record(path: Path, record: dict[str, Any], configs: list[RunConfig]) -> None:
    """Listed weight steps must be eval steps of every run (weights are copied out at evals)."""
    for cfg in configs:
        for step in (s for s in record.get("weights", ()) if s != "final"):
            if step % cfg.eval_every:
                raise UserError(
                    f"{path}: record['weights'] step {step}: not an eval step of runs with eval_every = "
                    f"{cfg.eval_every}; list multiples of it"
                )


def weight_bytes(cfg: RunConfig) -> int:
    """Bytes of one stored weights file of a run shaped like `cfg` (its parameters; the header is small)."""
    spec = MODELS.get(cfg.model).spec(cfg, TASKS.get(cfg.task).dims(cfg))
    return BYTES[cfg.dtype] * sum(math.prod(shape) for shape, _ in spec.values())


def weights_note(record: dict[str, Any], configs: list[RunConfig]) -> str | None:
    """The line `grokscan run` prints before a sweep that stores weights: files and bytes per run."""
    kept = record.get("weights", ())
    if not kept:
        return None
    if not configs:
        return f"weights: {len(kept)} safetensors files per run ({', '.join(map(str, kept))})"
    sizes = [weight_bytes(c) * sum(1 for s in kept if s == "final" or s <= c.steps) for c in configs]
    low, high = min(sizes), max(sizes)
    per_run = _size(high) if low == high else f"{_size(low)} to {_size(high)}"
    return (
        f"weights: {per_run} per run ({', '.join(map(str, kept))}), {_size(sum(sizes))} for {len(sizes)} runs"
    )


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def recording_of(record: dict[str, Any], storage: str | None = None):
    """The engine's Recording for a parsed `record` setting, and its WeightTap (None: no weights) writing
    to `storage`."""
    from grokscan.engine.weights import WeightTap
    from grokscan.results.weights import write_weights

    kept = record.get("weights", ())
    tap = None
    if kept and storage is not None:

        def write(run_id: str, step: int, tensors: dict, final: bool) -> None:
            write_weights(storage, run_id, step, tensors, final)

        tap = WeightTap(write, [s for s in kept if s != "final"], final="final" in kept)
    rec = Recording(metrics=tuple(record.get("metrics", ())), every=record.get("every", 1), on_eval=tap)
    return rec, tap
