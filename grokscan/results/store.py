"""Results store: append-only Parquet fragments of runs and curves, local or on an object store.

Layout under a root (local path or URI such as ``s3://bucket/prefix``): ``runs/sweep=<sweep>/part-<id>.
parquet`` (one row per run) and ``curves/sweep=<sweep>/part-<id>.parquet`` (one row per run and evaluated
step). The ``sweep`` column lives in the hive folder name, not in the files, so pandas, pyarrow.dataset and
duckdb (``hive_partitioning=true``) read both as is.

Columns (`grokscan.results.schema`): the declared ones, plus the metric columns found in the fragments'
footers; a fragment without a metric reads as null there, and columns of grokscan 0.1 that are no longer
stored (``gap``, ``phase``) are ignored. ``load_runs`` names each run's phase on load, for a given gap.

Crash safety: ``Store.write`` writes its curves fragment, then its runs fragment, the commit record: curves
count only when their (sweep, run_id, write_id) matches the kept runs row. Locally a fragment is written
under a temp name (``.tmp-<uuid>``, which no reader matches) and renamed; object-store PUTs are already
all-or-nothing. A run stored twice (e.g. a resumed sweep) is deduplicated on read, keeping a finished row
over an error row, then the earliest ``created_at`` (ties: smallest ``write_id``); ``compact`` makes that
permanent.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from grokscan.errors import UserError
from grokscan.results.phases import DEFAULT_GAP, phases
from grokscan.results.schema import (
    CURVES_SCHEMA,
    METRICS_AFTER,
    RUNS_SCHEMA,
    check_sweep,
    error_rows,
    is_metric_column,
    result_rows,
    with_metrics,
)

if TYPE_CHECKING:
    from grokscan.config import RunConfig
    from grokscan.result import RunResult

__all__ = ["Store", "compact", "load_curves", "load_runs"]

_RUN_KEYS = ["sweep", "run_id", "write_id"]  # identify one stored runs row; curves join on them
_RUN_ORDER = ["status", "created_at", "write_id"]  # read to choose which of a run's rows is kept

# Read as dictionaries: reordering rows then moves int32 codes, not strings (~2x faster at 1M rows).
_DICT_COLUMNS = [f.name for f in RUNS_SCHEMA if f.type == pa.string() and f.name not in _RUN_KEYS]
_READ_SCHEMAS = {
    "runs": pa.schema(
        pa.field(f.name, pa.dictionary(pa.int32(), pa.string())) if f.name in _DICT_COLUMNS else f
        for f in RUNS_SCHEMA
    ),
    "curves": CURVES_SCHEMA,
}
_FORMAT = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=_DICT_COLUMNS))
_PARTITIONING = ds.partitioning(pa.schema([("sweep", pa.string())]), flavor="hive")


def _resolve(root: str) -> tuple[pafs.FileSystem, str]:
    if "://" in root:
        filesystem, base = pafs.FileSystem.from_uri(root)
    else:
        filesystem, base = pafs.LocalFileSystem(), os.path.abspath(root)
    return filesystem, base.rstrip("/")


def _put(filesystem: pafs.FileSystem, folder: str, table: pa.Table) -> None:
    """Write `table` (minus the partition column) as a new whole fragment in `folder`."""
    sink = pa.BufferOutputStream()
    pq.write_table(table.drop_columns(["sweep"]), sink)
    data = sink.getvalue()
    final = f"{folder}/part-{uuid.uuid4().hex}.parquet"
    if isinstance(filesystem, pafs.LocalFileSystem):
        os.makedirs(folder, exist_ok=True)
        tmp = f"{folder}/.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    else:
        filesystem.create_dir(folder, recursive=True)
        with filesystem.open_output_stream(final) as f:
            f.write(data)


def _fragments(filesystem: pafs.FileSystem, base: str, kind: str, sweep: str | None) -> list[str]:
    """Paths of whole fragments (``sweep=*/part-*.parquet``) of one table, optionally of one sweep."""
    top = f"{base}/{kind}" + ("" if sweep is None else f"/sweep={check_sweep(sweep)}")
    infos = filesystem.get_file_info(pafs.FileSelector(top, recursive=True, allow_not_found=True))
    return sorted(
        i.path
        for i in infos
        if i.type == pafs.FileType.File
        and i.base_name.startswith("part-")
        and i.base_name.endswith(".parquet")
        and i.path.rsplit("/", 2)[-2].startswith("sweep=")
    )


def _readable(
    fs: pafs.FileSystem, paths: list[str], kind: str, skip_corrupt: bool
) -> tuple[list[str], pa.Schema]:
    """Fragments whose Parquet footer reads and holds this table's key columns (one footer read per file),
    and the schema to read them with: the declared columns, then the metric columns of any footer in order
    of first appearance."""
    needed = {"run_id", "write_id", "status" if kind == "runs" else "step"}
    declared = _READ_SCHEMAS[kind]
    good, metrics = [], {}
    for path in paths:
        try:
            with fs.open_input_file(path) as f:
                names = pq.read_schema(f).names
            problem = f"lacks columns {sorted(needed - set(names))}" if needed - set(names) else None
        except (pa.ArrowInvalid, OSError) as err:
            problem = f"is not a whole Parquet file ({err})"
        if problem is None:
            good.append(path)
            metrics.update((n, None) for n in names if n not in declared.names and is_metric_column(kind, n))
        elif skip_corrupt:
            warnings.warn(f"skipping {path}: it {problem}", stacklevel=3)
        else:
            raise UserError(
                f"{path} {problem}: move it out of the results directory, or skip such files explicitly "
                "(skip_corrupt=True, --skip-corrupt)"
            )
    return good, with_metrics(declared, list(metrics))


def _read(
    fs: pafs.FileSystem,
    base: str,
    kind: str,
    sweep: str | None,
    columns: list[str] | None = None,
    where: pc.Expression | None = None,
    skip_corrupt: bool = False,
) -> pa.Table:
    """Whole fragments of one table as Arrow; low-cardinality strings come back dictionary-encoded."""
    paths, schema = _readable(fs, _fragments(fs, base, kind, sweep), kind, skip_corrupt)
    if not paths:
        return schema.empty_table().select(columns or schema.names)
    # A declared schema (not each file's): fragments written before a column existed read it as null, and
    # file columns it lacks (retired ones) are not read.
    dataset = ds.dataset(
        paths,
        schema=schema,
        format=_FORMAT,
        filesystem=fs,
        partitioning=_PARTITIONING,
        partition_base_dir=f"{base}/{kind}",
    )
    try:
        return dataset.to_table(columns=columns, filter=where)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as err:
        raise UserError(f"{base}/{kind}: a fragment does not match grokscan's {kind} schema ({err})") from err


def _first_rows(keys: pa.Table, first_by: pa.Table | None = None) -> pa.Array:
    """Row indices of the first row of each distinct key, in ascending key order.

    "First" means smallest `first_by`: rows are put in that order, then stably sorted by key.
    """
    order = None
    if first_by is not None:
        order = pc.sort_indices(first_by, [(c, "ascending") for c in first_by.column_names])
        keys = keys.take(order)
    # One array sorts several times faster than a one-column table.
    sortable = keys.column(0) if keys.num_columns == 1 else keys
    indices = pc.sort_indices(sortable, [(c, "ascending") for c in keys.column_names])
    if len(indices) > 1:
        changed = None
        for column in keys.take(indices).columns:
            diff = pc.not_equal(column[1:], column[:-1])
            changed = diff if changed is None else pc.or_(changed, diff)
        indices = indices.filter(pa.chunked_array([[True], *changed.chunks]))
    return indices if order is None else order.take(indices)


def _key(table: pa.Table, names: Sequence[str]) -> pa.Array:
    # '/' occurs in no sweep name, run_id or write_id, so the joined key is unambiguous.
    return pc.binary_join_element_wise(*(table.column(n) for n in names), "/").combine_chunks()


def _take(table: pa.Table, indices: pa.Array) -> pa.Table:
    # A compacted sweep is already sorted and unique: skip a full copy of every column.
    n = len(indices)
    if n == table.num_rows and (n < 2 or pc.all(pc.greater(indices[1:], indices[:-1])).as_py()):
        return table
    return table.take(indices)


def _plain(schema: pa.Schema) -> pa.Schema:
    """`schema` with dictionary-encoded columns as their plain value type."""
    return pa.schema(
        pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema
    )


def _dedupe_runs(runs: pa.Table) -> pa.Table:
    """Kept runs rows (see module doc), sorted by sweep, run_id, with plain (not dictionary) types."""
    # A finished row beats an error row (a failed run retried later succeeded), then the earliest wins.
    preference = pa.table(
        {
            "failed": pc.equal(runs.column("status"), "error"),
            "created_at": runs.column("created_at"),
            "write_id": runs.column("write_id"),
        }
    )
    first = _first_rows(pa.table({"key": _key(runs, ["sweep", "run_id"])}), preference)
    kept = _take(runs, first)
    return kept.cast(_plain(kept.schema))


def _kept_curves(curves: pa.Table, kept_runs: pa.Table) -> pa.Table:
    """Curves of the kept runs rows only, one row per (sweep, run_id, step), sorted that way."""
    # Position of each row's runs row among the (sorted) kept runs; null when that row was not kept.
    rank = pc.index_in(_key(curves, _RUN_KEYS), value_set=_key(kept_runs, _RUN_KEYS))
    curves = curves.append_column("rank", rank).filter(pc.is_valid(rank))
    # Dedupe too: a crash mid-compaction leaves the same rows in an old and a new fragment.
    return _take(curves, _first_rows(curves.select(["rank", "step"]))).drop_columns(["rank"])


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    # Int64 keeps null step_gen/step_fit null instead of turning them into NaN floats.
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def load_runs(
    path: str, sweep: str | None = None, skip_corrupt: bool = False, gap: int = DEFAULT_GAP
) -> pd.DataFrame:
    """All runs rows under `path` (one sweep or all), one per (sweep, run_id), sorted by sweep, run_id.

    Columns: RUNS_SCHEMA's, with ``phase`` (named on load with `gap`, see `grokscan.results.phases`; None
    for a run that did not finish ok) and then the stored ``final_<metric>`` columns after ``steps_run``.
    Returns a frame with only the declared columns and ``phase`` when nothing is stored.

    Raises:
        UserError: an invalid sweep name or gap, or a truncated or foreign ``part-*.parquet`` file (named),
            unless `skip_corrupt` (then such a file is skipped with a warning).
    """
    filesystem, base = _resolve(path)
    table = _dedupe_runs(_read(filesystem, base, "runs", sweep, skip_corrupt=skip_corrupt))
    runs = _to_pandas(table)
    runs.insert(runs.columns.get_loc(METRICS_AFTER) + 1, "phase", phases(runs, gap))
    return runs


def load_curves(
    path: str, sweep: str | None = None, run_ids: Iterable[str] | None = None, skip_corrupt: bool = False
) -> pd.DataFrame:
    """Curves of the kept runs rows (see module doc) of one sweep or all, optionally only of `run_ids`,
    sorted by sweep, run_id, step. Columns: sweep, run_id, write_id, step, then one float64 column per
    stored curve metric (NaN for a run that did not compute it). `skip_corrupt` as in load_runs."""
    filesystem, base = _resolve(path)
    where = None if run_ids is None else pc.field("run_id").isin(pa.array(list(run_ids), pa.string()))
    columns = ["sweep", "run_id", *_RUN_ORDER]
    runs = _read(filesystem, base, "runs", sweep, columns=columns, where=where, skip_corrupt=skip_corrupt)
    curves = _read(filesystem, base, "curves", sweep, where=where, skip_corrupt=skip_corrupt)
    return _to_pandas(_kept_curves(curves, _dedupe_runs(runs)))


def compact(path: str, sweep: str) -> int:
    """Rewrite one sweep's fragments as one deduplicated fragment per table; return the runs rows kept.

    Rows keep their original ``write_id`` and ``created_at``, so a concurrent reader that sees both the
    old and the new fragments (until the old ones are deleted) still dedupes to the same result. Columns
    grokscan no longer stores (see module doc) are dropped.
    """
    filesystem, base = _resolve(path)
    old = [p for kind in ("runs", "curves") for p in _fragments(filesystem, base, kind, sweep)]
    all_runs, all_curves = (_read(filesystem, base, kind, sweep) for kind in ("runs", "curves"))
    runs = _dedupe_runs(all_runs)
    # Curves with no runs row at all may belong to a write still in flight: carry them over unread.
    pending = pc.invert(pc.is_in(_key(all_curves, _RUN_KEYS), value_set=_key(all_runs, _RUN_KEYS)))
    curves = pa.concat_tables([_kept_curves(all_curves, runs), all_curves.filter(pending)])
    if curves.num_rows:
        _put(filesystem, f"{base}/curves/sweep={sweep}", curves)
    if runs.num_rows:
        _put(filesystem, f"{base}/runs/sweep={sweep}", runs)
    for fragment in old:
        filesystem.delete_file(fragment)
    return runs.num_rows


class Store:
    """Writer (and resume helper) for one results root: a local folder or a pyarrow filesystem URI."""

    def __init__(self, root: str) -> None:
        self._fs, self._base = _resolve(root)

    def write(
        self, sweep: str, results: Sequence[RunResult] = (), errors: Sequence[tuple[RunConfig, str]] = ()
    ) -> str:
        """Append finished runs (ok or diverged) and failed runs as one fragment per table.

        Args:
            sweep: Sweep name: letters, digits, '_', '.', '-'.
            results: Finished runs.
            errors: ``(config, message)`` per run whose training raised; runs sharing a message were one pack.

        Returns:
            The write_id (uuid4 hex) stamped on every row written.

        Raises:
            UserError: an invalid sweep name (nothing is written).
        """
        check_sweep(sweep)
        write_id = uuid.uuid4().hex
        runs, curves = result_rows(sweep, results, write_id)
        by_message: dict[str, list[RunConfig]] = defaultdict(list)
        for config, message in errors:
            by_message[message].append(config)
        failed = [error_rows(sweep, c, m, write_id) for m, c in by_message.items()]
        # Error rows have no metric columns: promotion fills them with null.
        runs = pa.concat_tables([runs, *failed], promote_options="default")
        # Runs last: its row is the commit record, so a crash in between leaves only curves readers ignore.
        if curves.num_rows:
            _put(self._fs, f"{self._base}/curves/sweep={sweep}", curves)
        if runs.num_rows:
            _put(self._fs, f"{self._base}/runs/sweep={sweep}", runs)
        return write_id

    def done_run_ids(self, sweep: str | None = None) -> set[str]:
        """run_ids with a finished runs row (ok or diverged) in one sweep or all: a resumed sweep skips them
        and retries runs that only have an error row."""
        table = _read(
            self._fs, self._base, "runs", sweep, columns=["run_id"], where=pc.field("status") != "error"
        )
        return set(pc.unique(table.column("run_id")).to_pylist())
