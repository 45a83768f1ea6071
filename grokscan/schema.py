"""Parquet schemas of the runs and curves tables, and the rows one write adds to them.

Declared once, from RunConfig's fields: adding a field to RunConfig adds its column here.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import socket
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone

import pyarrow as pa

from grokscan.config import FIELD_NAMES, FIELD_TYPES, RunConfig
from grokscan.result import CURVE_METRICS, RunResult

SWEEP_NAME = re.compile(r"[A-Za-z0-9_.-]+")
FINAL_COLUMNS = tuple(f"final_{m}" for m in CURVE_METRICS)


def _arrow_type(annotation: str) -> pa.DataType:
    """Parquet type of a RunConfig field from its annotation string (``from __future__`` annotations)."""
    kinds = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    for prefix, kind in kinds.items():
        if annotation.startswith(prefix):
            return kind
    raise TypeError(f"RunConfig annotation {annotation!r} has no Parquet type; extend schema._arrow_type")


RUNS_SCHEMA = pa.schema(
    [
        ("sweep", pa.string()),
        ("run_id", pa.string()),
        *((name, _arrow_type(FIELD_TYPES[name])) for name in FIELD_NAMES),
        ("status", pa.string()),
        ("error", pa.string()),
        ("step_fit", pa.int64()),
        ("step_gen", pa.int64()),
        ("censored", pa.bool_()),
        ("steps_run", pa.int64()),
        ("phase", pa.string()),
        *((name, pa.float64()) for name in FINAL_COLUMNS),
        ("wall_s", pa.float64()),
        ("pack_size", pa.int64()),
        ("device", pa.string()),
        ("host", pa.string()),
        ("grokscan_version", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("write_id", pa.string()),
    ]
)
CURVES_SCHEMA = pa.schema(
    [
        ("sweep", pa.string()),
        ("run_id", pa.string()),
        ("write_id", pa.string()),
        ("step", pa.int64()),
        *((m, pa.float64()) for m in CURVE_METRICS),
    ]
)


def check_sweep(sweep: str) -> str:
    """Return `sweep` if it is a valid sweep name (it becomes a folder name), else raise ValueError."""
    if not isinstance(sweep, str) or not SWEEP_NAME.fullmatch(sweep):
        raise ValueError(
            f"invalid sweep name {sweep!r}: use a non-empty name made of letters, digits, '_', '.' and '-' "
            "(e.g. the search-space file's stem)"
        )
    return sweep


@functools.lru_cache(maxsize=1)
def _provenance() -> tuple[str, str]:
    try:
        version = importlib.metadata.version("grokscan")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return socket.gethostname(), version


def _runs_table(sweep: str, write_id: str, rows: list[dict]) -> pa.Table:
    """RUNS_SCHEMA table from one dict per run; columns a dict leaves out are null."""
    host, version = _provenance()
    # One timestamp per write: dedupe orders writes, not the rows within one.
    now = datetime.now(timezone.utc)
    common = {"sweep": check_sweep(sweep), "host": host, "grokscan_version": version, "created_at": now}
    return pa.Table.from_pylist([{**row, **common, "write_id": write_id} for row in rows], schema=RUNS_SCHEMA)


def result_rows(sweep: str, results: Sequence[RunResult], write_id: str) -> tuple[pa.Table, pa.Table]:
    """Runs table (one row per result) and curves table (one row per evaluation) of one write.

    ``RunResult.curves`` maps "step" and each of CURVE_METRICS to equal-length lists.
    """
    runs = _runs_table(
        sweep,
        write_id,
        [
            {
                **r.config.to_dict(),
                **{column: r.final.get(m) for m, column in zip(CURVE_METRICS, FINAL_COLUMNS, strict=True)},
                **{
                    k: getattr(r, k)
                    for k in ("run_id", "status", "error", "step_fit", "step_gen", "censored")
                },
                **{k: getattr(r, k) for k in ("steps_run", "phase", "wall_s", "pack_size", "device")},
            }
            for r in results
        ],
    )
    curves: dict[str, list] = defaultdict(list)
    for r in results:
        n = len(r.curves.get("step", ()))
        curves["run_id"] += [r.run_id] * n
        for column in ("step", *CURVE_METRICS):
            curves[column] += list(r.curves.get(column, [None] * n))
    n = len(curves["run_id"])
    curves.update(sweep=[sweep] * n, write_id=[write_id] * n)
    return runs, pa.Table.from_pydict(curves, schema=CURVES_SCHEMA)


def error_rows(sweep: str, configs: Sequence[RunConfig], error: str, write_id: str) -> pa.Table:
    """Runs rows for runs whose training raised (e.g. their whole pack failed): status "error", no metrics,
    censored with steps_run null, so analysis can count them but not fit them."""
    n = len(configs)
    extra = {"status": "error", "error": error, "censored": True, "wall_s": 0.0, "pack_size": n, "device": ""}
    return _runs_table(sweep, write_id, [{**c.to_dict(), "run_id": c.run_id, **extra} for c in configs])
