"""A search-space file's `record` setting: what its runs record beyond the default curves.

    record = {"metrics": ["fourier", "key_freq_losses"], "every": 4}

`metrics`: opt-in curve metrics by registered name (`grokscan.engine.progress`), computed at every
`every`-th eval and at the budget's last step. Recording changes no run's training, so it is not part of
any run's config or id: a run already stored under the sweep's name is not trained again to record more
(use another sweep name or results directory for that).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grokscan.engine.recording import Recording
from grokscan.errors import UserError
from grokscan.registry import closest

KEYS = ("metrics", "every")


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
    return {"metrics": rec.metrics, "every": rec.every}


def recording_of(record: dict[str, Any]) -> Recording:
    """The engine's Recording for a parsed `record` setting."""
    return Recording(metrics=tuple(record.get("metrics", ())), every=record.get("every", 1))
