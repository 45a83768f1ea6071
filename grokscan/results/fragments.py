"""Listing and reading one table's whole Parquet fragments (`grokscan.results.store`'s read side).

A read lists the fragments (``<base>/<kind>/sweep=<sweep>/part-*.parquet``; temp files and other names are
not matched), reads each footer once (the key columns must be there; the metric columns found are added to
the declared schema) and then the listed fragments as one dataset. A compaction deletes fragments only after
writing their rows to a new one, so a listed fragment that vanished before it was read means "list again":
the read goes on over fresh listings, a bounded number of times (`READ_ATTEMPTS`; see `read_fragments`).
"""

from __future__ import annotations

import warnings

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from grokscan.errors import UserError
from grokscan.results.schema import CURVES_SCHEMA, RUNS_SCHEMA, check_sweep, is_metric_column, with_metrics

__all__ = ["READ_ATTEMPTS", "list_fragments", "read_fragments"]

# Read as dictionaries: reordering rows then moves int32 codes, not strings (~2x faster at 1M rows).
_DICT_COLUMNS = [
    f.name for f in RUNS_SCHEMA if f.type == pa.string() and f.name not in ("sweep", "run_id", "write_id")
]
_READ_SCHEMAS = {
    "runs": pa.schema(
        pa.field(f.name, pa.dictionary(pa.int32(), pa.string())) if f.name in _DICT_COLUMNS else f
        for f in RUNS_SCHEMA
    ),
    "curves": CURVES_SCHEMA,
}
_FORMAT = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=_DICT_COLUMNS))
_PARTITIONING = ds.partitioning(pa.schema([("sweep", pa.string())]), flavor="hive")
READ_ATTEMPTS = 8  # fresh listings a read tries when listed fragments keep being compacted away


def list_fragments(filesystem: pafs.FileSystem, base: str, kind: str, sweep: str | None) -> list[str]:
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
            if _gone(fs, [path], err):  # not corrupt: compacted away since it was listed
                raise _Vanished(path) from err
            problem = f"is not a whole Parquet file ({err})"
        if problem is None:
            good.append(path)
            metrics.update((n, None) for n in names if n not in declared.names and is_metric_column(kind, n))
        elif skip_corrupt:
            warnings.warn(f"skipping {path}: it {problem}", stacklevel=5)  # load_runs' caller
        else:
            raise UserError(
                f"{path} {problem}: move it out of the results directory, or skip such files explicitly "
                "(skip_corrupt=True, --skip-corrupt)"
            )
    return good, with_metrics(declared, list(metrics))


class _Vanished(Exception):
    """A listed fragment was deleted before it was read: a concurrent `compact` (which first wrote its rows
    to a new fragment) removed it."""


def _gone(fs: pafs.FileSystem, paths: list[str], err: Exception) -> bool:
    """Whether `err`, raised while reading `paths`, means one of them no longer exists (object stores
    need not say FileNotFoundError, so ask the filesystem)."""
    if isinstance(err, FileNotFoundError):
        return True
    return any(i.type == pafs.FileType.NotFound for i in fs.get_file_info(paths))


def _read_once(
    fs: pafs.FileSystem,
    base: str,
    kind: str,
    listed: list[str],
    columns: list[str] | None,
    where: pc.Expression | None,
    skip_corrupt: bool,
) -> tuple[pa.Table, list[str]]:
    paths, schema = _readable(fs, listed, kind, skip_corrupt)
    if not paths:
        return schema.empty_table().select(columns or schema.names), paths
    try:
        # A declared schema (not each file's): fragments written before a column existed read it as null,
        # and file columns it lacks (retired ones) are not read.
        dataset = ds.dataset(
            paths,
            schema=schema,
            format=_FORMAT,
            filesystem=fs,
            partitioning=_PARTITIONING,
            partition_base_dir=f"{base}/{kind}",
        )
        return dataset.to_table(columns=columns, filter=where), paths
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as err:
        if _gone(fs, paths, err):
            raise _Vanished(f"{base}/{kind}") from err
        raise UserError(f"{base}/{kind}: a fragment does not match grokscan's {kind} schema ({err})") from err


def read_fragments(
    fs: pafs.FileSystem,
    base: str,
    kind: str,
    sweep: str | None,
    columns: list[str] | None = None,
    where: pc.Expression | None = None,
    skip_corrupt: bool = False,
) -> tuple[pa.Table, list[str]]:
    """Whole fragments of one table as Arrow (low-cardinality strings dictionary-encoded), and the paths
    read.

    A fragment listed but deleted before it was read was compacted: its rows went to a fragment written
    before the deletion, which a later listing shows. So the read falls back to one fragment at a time over
    fresh listings, reading only fragments it has not tried yet, until a listing shows nothing new or
    nothing vanished (at most `READ_ATTEMPTS` listings). The rows may then hold a compacted run twice,
    which is what a reader that lists old and new fragments at once sees too: dedupe on read removes it.

    Raises:
        UserError: a fragment that is not grokscan's (see `_readable`), or fragments still vanishing after
            `READ_ATTEMPTS` listings.
    """
    try:  # the common case: one dataset over one listing
        return _read_once(fs, base, kind, list_fragments(fs, base, kind, sweep), columns, where, skip_corrupt)
    except _Vanished:
        pass
    tables: dict[str, pa.Table] = {}
    tried: set[str] = set()
    for _ in range(READ_ATTEMPTS):
        fresh = [p for p in list_fragments(fs, base, kind, sweep) if p not in tried]
        tried.update(fresh)
        vanished = False
        for path in fresh:
            try:
                table, got = _read_once(fs, base, kind, [path], columns, where, skip_corrupt)
            except _Vanished:
                vanished = True
                continue
            tables.update((p, table) for p in got)  # got is [] for a corrupt fragment skipped
        if not vanished:
            if not tables:  # all vanished and no successor listed: nothing is stored any more
                return _read_once(fs, base, kind, [], columns, where, skip_corrupt)
            read = sorted(tables)  # the fast path's order, so metric columns come in the same order
            return pa.concat_tables([tables[p] for p in read], promote_options="default"), read
    raise UserError(
        f"{base}/{kind}: fragments kept vanishing while being read ({READ_ATTEMPTS} listings; something is "
        "deleting them, e.g. compactions in a tight loop): try again"
    )
