"""Parquet schemas of the runs and curves tables, and the rows one write adds to them.

The declared columns come from RunConfig's fields and a run's outcome: adding a field to RunConfig adds its
column here. The metric columns are data-driven: the runs table gets ``final_<name>`` per key of
``RunResult.final``, the curves table one float64 column per key of ``RunResult.curves`` other than "step".
A new curve metric therefore adds columns without a change here, and a run whose pack did not compute a
metric has null there. Neither ``gap`` nor ``phase`` is stored: phases are named at analysis time
(`grokscan.results.phases`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import re
import socket
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pyarrow as pa

from grokscan.config import FIELD_NAMES, FIELD_TYPES
from grokscan.errors import UserError

if TYPE_CHECKING:
    from grokscan.config import RunConfig
    from grokscan.result import RunResult

SWEEP_NAME = re.compile(r"[A-Za-z0-9_.-]+")
FINAL_PREFIX = "final_"  # runs column of a metric's last value: final_<curve column>
METRIC_TYPE = pa.float64()
METRICS_AFTER = "steps_run"  # the runs table's metric columns follow this column (as in grokscan 0.1)


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
        ("wall_s", pa.float64()),
        ("pack_size", pa.int64()),
        ("device", pa.string()),
        ("host", pa.string()),
        ("grokscan_version", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("write_id", pa.string()),
    ]
)
# The keys of a curves row; its metric columns are data-driven (`with_metrics`).
CURVES_SCHEMA = pa.schema(
    [("sweep", pa.string()), ("run_id", pa.string()), ("write_id", pa.string()), ("step", pa.int64())]
)


def is_metric_column(kind: str, name: str) -> bool:
    """Whether an undeclared column found in a `kind` ("runs" or "curves") fragment is a metric column,
    read back as float64, rather than a retired one that readers ignore (``gap`` and ``phase`` of the runs
    fragments grokscan 0.1 wrote)."""
    return kind == "curves" or name.startswith(FINAL_PREFIX)


def with_metrics(schema: pa.Schema, names: Sequence[str]) -> pa.Schema:
    """`schema` (a runs or curves schema) with a float64 column per metric column name, in the given order:
    after ``steps_run`` in a runs schema, at the end of a curves schema.

    Raises:
        ValueError: a name is a declared column (a metric named like a key would overwrite it).
    """
    clash = sorted(set(names) & set(schema.names))
    if clash:
        raise ValueError(f"metric column(s) {clash} would overwrite declared columns of the table")
    where = schema.get_field_index(METRICS_AFTER) + 1 if METRICS_AFTER in schema.names else len(schema)
    fields = list(schema)
    return pa.schema([*fields[:where], *(pa.field(n, METRIC_TYPE) for n in names), *fields[where:]])


def check_sweep(sweep: str) -> str:
    """Return `sweep` if it is a valid sweep name (it becomes a folder name), else raise UserError."""
    if not isinstance(sweep, str) or not SWEEP_NAME.fullmatch(sweep):
        raise UserError(
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


def _runs_table(sweep: str, write_id: str, rows: list[dict], schema: pa.Schema = RUNS_SCHEMA) -> pa.Table:
    """`schema` table from one dict per run; columns a dict leaves out are null."""
    host, version = _provenance()
    # One timestamp per write: dedupe orders writes, not the rows within one.
    now = datetime.now(timezone.utc)
    common = {"sweep": check_sweep(sweep), "host": host, "grokscan_version": version, "created_at": now}
    return pa.Table.from_pylist([{**row, **common, "write_id": write_id} for row in rows], schema=schema)


def _union(keys: Iterable[Iterable[str]]) -> list[str]:
    """Distinct keys in order of first appearance."""
    return list(dict.fromkeys(k for group in keys for k in group))


_OUTCOME = ("run_id", "status", "error", "step_fit", "step_gen", "censored", "steps_run", "wall_s")


def result_rows(sweep: str, results: Sequence[RunResult], write_id: str) -> tuple[pa.Table, pa.Table]:
    """Runs table (one row per result) and curves table (one row per evaluation) of one write.

    The metric columns are the union of the results' ``final`` keys (``final_<key>``) and ``curves`` keys
    (other than "step"); a result without one of them is null there.

    Raises:
        ValueError: a result's curve column is not as long as its "step" list (a bug in whoever built it).
    """
    finals = [FINAL_PREFIX + k for k in _union(r.final for r in results)]
    rows = [
        {
            **r.config.to_dict(),
            **{k: getattr(r, k) for k in (*_OUTCOME, "pack_size", "device")},
            **{FINAL_PREFIX + k: v for k, v in r.final.items()},
        }
        for r in results
    ]
    runs = _runs_table(sweep, write_id, rows, with_metrics(RUNS_SCHEMA, finals))
    metrics = _union((k for k in r.curves if k != "step") for r in results)
    curves: dict[str, list] = defaultdict(list)
    for r in results:
        n = len(r.curves.get("step", ()))
        curves["run_id"] += [r.run_id] * n
        curves["step"] += list(r.curves.get("step", ()))
        for column in metrics:
            values = list(r.curves.get(column, [None] * n))
            if len(values) != n:
                raise ValueError(f"run {r.run_id}: curve {column!r} has {len(values)} values for {n} steps")
            curves[column] += values
    n = len(curves["run_id"])
    curves.update(sweep=[sweep] * n, write_id=[write_id] * n)
    return runs, pa.Table.from_pydict(curves, schema=with_metrics(CURVES_SCHEMA, metrics))


def error_rows(sweep: str, configs: Sequence[RunConfig], error: str, write_id: str) -> pa.Table:
    """Runs rows for runs whose training raised (e.g. their whole pack failed): status "error", no metrics,
    censored with steps_run null, so analysis can count them but not fit them."""
    n = len(configs)
    extra = {"status": "error", "error": error, "censored": True, "wall_s": 0.0, "pack_size": n, "device": ""}
    return _runs_table(sweep, write_id, [{**c.to_dict(), "run_id": c.run_id, **extra} for c in configs])


_PY_TYPES = {pa.string(): (str,), pa.int64(): (int,), pa.float64(): (int, float)}


def invalid_rows(sweep: str, point: dict, error: str, write_id: str) -> tuple[str, pa.Table]:
    """(run_id, runs row) for a proposed point that is no valid RunConfig (e.g. an adaptive searcher's
    sample outside what a field allows): status "error" with the reason; the point's values stand in the
    config columns where they fit the column's type. Its run_id hashes the point itself."""
    blob = json.dumps(point, sort_keys=True, separators=(",", ":"), default=str)
    run_id = hashlib.sha256(blob.encode()).hexdigest()[:16]
    config = {}
    for name in FIELD_NAMES:
        value, kinds = point.get(name), _PY_TYPES.get(RUNS_SCHEMA.field(name).type, ())
        if isinstance(value, kinds) and not isinstance(value, bool):
            config[name] = value
    row = {**config, "run_id": run_id, "status": "error", "error": error, "censored": True, "device": ""}
    return run_id, _runs_table(sweep, write_id, [{**row, "wall_s": 0.0, "pack_size": 1}])
