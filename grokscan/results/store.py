"""Results store: append-only Parquet fragments of runs and curves, local or on an object store.

Layout under a root (local path or URI such as ``s3://bucket/prefix``): ``runs/sweep=<sweep>/part-<id>.
parquet`` (one row per run) and ``curves/sweep=<sweep>/part-<id>.parquet`` (one row per run and evaluated
step). The ``sweep`` column lives in the hive folder name, not in the files, so pandas, pyarrow.dataset and
duckdb (``hive_partitioning=true``) read both as is.

Columns (`grokscan.results.schema`): the declared ones, plus the metric columns found in the fragments'
footers; a fragment without a metric reads as null there, and columns of grokscan 0.1 that are no longer
stored (``gap``, ``phase``) are ignored. ``load_runs`` names each run's phase on load, for a given gap.

Reading (`grokscan.results.fragments`): every ``part-*.parquet`` listed is read whole; a fragment listed but
deleted before it is read (by a concurrent ``compact``, which wrote its rows elsewhere first) makes the read
go on from a fresh listing. ``compact`` merges a sweep's fragments, so a long sweep reads fast again.

Crash safety: ``Store.write`` writes its curves fragment, then its runs fragment, the commit record: curves
count only when their (sweep, run_id, write_id) matches the kept runs row. Locally a fragment is written
under a temp name (``.tmp-<uuid>``, which no reader matches) and renamed; object-store PUTs are already
all-or-nothing. A run stored twice (e.g. a resumed sweep) is deduplicated on read, keeping a finished row
over an error row, then the earliest ``created_at`` (ties: smallest ``write_id``); ``compact`` makes that
permanent.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from grokscan.results.fragments import list_fragments, read_fragments
from grokscan.results.phases import DEFAULT_GAP, DEFAULT_HORIZON, check_rule, phases
from grokscan.results.schema import METRICS_AFTER, check_sweep, error_rows, invalid_rows, result_rows
from grokscan.results.thresholds import at_threshold

if TYPE_CHECKING:
    from grokscan.config import RunConfig
    from grokscan.result import RunResult

__all__ = ["CompactionStats", "Store", "compact", "load_curves", "load_runs", "sweeps"]

_RUN_KEYS = ["sweep", "run_id", "write_id"]  # identify one stored runs row; curves join on them
_RUN_ORDER = ["status", "created_at", "write_id"]  # read to choose which of a run's rows is kept


def _resolve(root: str) -> tuple[pafs.FileSystem, str]:
    if "://" in root:
        filesystem, base = pafs.FileSystem.from_uri(root)
    else:
        filesystem, base = pafs.LocalFileSystem(), os.path.abspath(root)
    return filesystem, base.rstrip("/")


def _put(filesystem: pafs.FileSystem, folder: str, table: pa.Table, name: str | None = None) -> None:
    """Write `table` (minus the partition column) as a whole fragment `part-<name>.parquet` in `folder` (a
    new uuid by default; a given name replaces a fragment of that name whole)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table.drop_columns(["sweep"]), sink)
    put_whole(filesystem, folder, f"part-{name or uuid.uuid4().hex}.parquet", sink.getvalue())


def put_whole(filesystem: pafs.FileSystem, folder: str, name: str, data: bytes | pa.Buffer) -> None:
    """Write `data` as the file `name` in `folder`, whole: locally under a temp name, then renamed (no
    reader matches ``.tmp-*``); an object-store PUT is all-or-nothing already."""
    final = f"{folder}/{name}"
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
    path: str,
    sweep: str | None = None,
    skip_corrupt: bool = False,
    gap: int = DEFAULT_GAP,
    threshold: float | None = None,
    horizon: float = DEFAULT_HORIZON,
) -> pd.DataFrame:
    """All runs rows under `path` (one sweep or all), one per (sweep, run_id), sorted by sweep, run_id.

    Columns: RUNS_SCHEMA's, with ``phase`` (named on load with `gap` and `horizon`, see
    `grokscan.results.phases`; None for a run that did not finish ok) and then the stored
    ``final_<metric>`` columns after ``steps_run``. With a `threshold`, step_fit, step_gen and censored are
    recomputed at that accuracy from the stored curves (`grokscan.results.thresholds`) before phases are
    named. Returns a frame with only the declared columns and ``phase`` when nothing is stored.

    Raises:
        UserError: an invalid sweep name, gap, horizon or threshold, or a truncated or foreign
            ``part-*.parquet`` file (named), unless `skip_corrupt` (then such a file is skipped, warned).
    """
    check_rule(gap, horizon)
    filesystem, base = _resolve(path)
    table = _dedupe_runs(read_fragments(filesystem, base, "runs", sweep, skip_corrupt=skip_corrupt)[0])
    runs = _to_pandas(table)
    if threshold is not None:
        runs = at_threshold(runs, load_curves(path, sweep, skip_corrupt=skip_corrupt), threshold)
    runs.insert(runs.columns.get_loc(METRICS_AFTER) + 1, "phase", phases(runs, gap, horizon))
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
    runs, _ = read_fragments(filesystem, base, "runs", sweep, columns, where, skip_corrupt)
    curves, _ = read_fragments(filesystem, base, "curves", sweep, where=where, skip_corrupt=skip_corrupt)
    return _to_pandas(_kept_curves(curves, _dedupe_runs(runs)))


@dataclass(frozen=True)
class CompactionStats:
    """What `compact` did to one sweep.

    Attributes:
        sweep: The sweep compacted.
        fragments_before: Runs and curves fragments read (the compaction's inputs).
        fragments_after: Runs and curves fragments listed once it is done: its outputs, plus any fragment a
            concurrent writer added meanwhile (left as it is).
        rows_read: Runs rows in the inputs, duplicates included.
        rows_kept: Runs rows written: one per run (see module doc).
        curve_rows_kept: Curves rows written.
    """

    sweep: str
    fragments_before: int
    fragments_after: int
    rows_read: int
    rows_kept: int
    curve_rows_kept: int


def compact(path: str, sweep: str) -> CompactionStats:
    """Rewrite one sweep's fragments as one deduplicated fragment per table.

    Safe with concurrent readers, writers and compactions, and never drops a kept row: the inputs are
    exactly the fragments read; the new fragments are written whole before any input is deleted; a
    fragment written meanwhile is neither read nor deleted; curves with no runs row among the inputs (a
    write in flight: its runs fragment, the commit record, lands last) are carried over; a reader whose
    listed fragment vanished reads on from a fresh listing (`grokscan.results.fragments`). Rows keep their
    ``write_id`` and ``created_at``, so a reader that sees old and new fragments at once dedupes to the
    same result; two compactions at once can leave duplicate rows, which dedupe removes. A sweep with at
    most one fragment per table is left as it is. Columns grokscan no longer stores (see module doc) are
    dropped.

    Raises:
        UserError: an invalid sweep name, or a fragment that is not grokscan's (see `load_runs`).
    """
    check_sweep(sweep)
    filesystem, base = _resolve(path)
    all_runs, run_paths = read_fragments(filesystem, base, "runs", sweep)
    all_curves, curve_paths = read_fragments(filesystem, base, "curves", sweep)
    inputs = [*run_paths, *curve_paths]
    if len(run_paths) <= 1 and len(curve_paths) <= 1:
        n = all_runs.num_rows
        return CompactionStats(sweep, len(inputs), len(inputs), n, n, all_curves.num_rows)
    runs = _dedupe_runs(all_runs)
    # Curves with no runs row at all may belong to a write still in flight: carry them over, once each
    # (a concurrent compaction may have carried them too).
    pending = all_curves.filter(
        pc.invert(pc.is_in(_key(all_curves, _RUN_KEYS), value_set=_key(all_runs, _RUN_KEYS)))
    )
    key = pa.table({"key": _key(pending, _RUN_KEYS), "step": pending.column("step")})
    pending = _take(pending, _first_rows(key))
    curves = pa.concat_tables([_kept_curves(all_curves, runs), pending])
    if curves.num_rows:
        _put(filesystem, f"{base}/curves/sweep={sweep}", curves)
    if runs.num_rows:
        _put(filesystem, f"{base}/runs/sweep={sweep}", runs)
    for fragment in inputs:
        # Already gone: a concurrent compaction read it too, and wrote its rows first.
        with contextlib.suppress(FileNotFoundError):
            filesystem.delete_file(fragment)
    after = sum(len(list_fragments(filesystem, base, kind, sweep)) for kind in ("runs", "curves"))
    return CompactionStats(sweep, len(inputs), after, all_runs.num_rows, runs.num_rows, curves.num_rows)


def sweeps(path: str) -> list[str]:
    """Names of the sweeps stored under `path` (its ``runs/sweep=*`` and ``curves/sweep=*`` folders),
    sorted; reads no fragment."""
    filesystem, base = _resolve(path)
    names = set()
    for kind in ("runs", "curves"):
        selector = pafs.FileSelector(f"{base}/{kind}", allow_not_found=True)
        for info in filesystem.get_file_info(selector):
            if info.type == pafs.FileType.Directory and info.base_name.startswith("sweep="):
                names.add(info.base_name.removeprefix("sweep="))
    return sorted(names)


def _content_id(sweep: str, results: Sequence[RunResult], errors: Sequence[tuple[RunConfig, str]]) -> str:
    """A write's name from what it holds: the same runs of the same kinds give the same name."""
    ok, failed = sorted(r.run_id for r in results), sorted(c.run_id for c, _ in errors)
    return hashlib.sha256(f"{sweep}|{','.join(ok)}|{','.join(failed)}".encode()).hexdigest()[:32]


class Store:
    """Writer (and resume helper) for one results root: a local folder or a pyarrow filesystem URI."""

    def __init__(self, root: str) -> None:
        self._fs, self._base = _resolve(root)

    def write(
        self,
        sweep: str,
        results: Sequence[RunResult] = (),
        errors: Sequence[tuple[RunConfig, str]] = (),
        idempotent: bool = False,
    ) -> str:
        """Append finished runs (ok or diverged) and failed runs as one fragment per table.

        Args:
            sweep: Sweep name: letters, digits, '_', '.', '-'.
            results: Finished runs.
            errors: ``(config, message)`` per run whose training raised; runs sharing a message were one pack.
            idempotent: Name the write by its content (sweep and the run ids of each kind) instead of a new
                uuid, so writing the same runs again (a trial retried after a lost node re-trains its pack)
                replaces those fragments instead of adding copies.

        Returns:
            The write_id (uuid4 hex, or the content's hash) stamped on every row written.

        Raises:
            UserError: an invalid sweep name (nothing is written).
        """
        check_sweep(sweep)
        write_id = _content_id(sweep, results, errors) if idempotent else uuid.uuid4().hex
        runs, curves = result_rows(sweep, results, write_id)
        by_message: dict[str, list[RunConfig]] = defaultdict(list)
        for config, message in errors:
            by_message[message].append(config)
        failed = [error_rows(sweep, c, m, write_id) for m, c in by_message.items()]
        # Error rows have no metric columns: promotion fills them with null.
        runs = pa.concat_tables([runs, *failed], promote_options="default")
        # Runs last: its row is the commit record, so a crash in between leaves only curves readers ignore.
        name = write_id if idempotent else None
        if curves.num_rows:
            _put(self._fs, f"{self._base}/curves/sweep={sweep}", curves, name)
        if runs.num_rows:
            _put(self._fs, f"{self._base}/runs/sweep={sweep}", runs, name)
        return write_id

    def write_invalid(self, sweep: str, point: dict, error: str) -> str:
        """Store an "error" row for a proposed point that is no valid RunConfig; returns its run_id."""
        run_id, runs = invalid_rows(check_sweep(sweep), point, error, uuid.uuid4().hex)
        _put(self._fs, f"{self._base}/runs/sweep={sweep}", runs)
        return run_id

    def done_run_ids(self, sweep: str | None = None) -> set[str]:
        """run_ids with a finished runs row (ok or diverged) in one sweep or all: a resumed sweep skips them
        and retries runs that only have an error row."""
        where = pc.field("status") != "error"
        table, _ = read_fragments(self._fs, self._base, "runs", sweep, columns=["run_id"], where=where)
        return set(pc.unique(table.column("run_id")).to_pylist())
