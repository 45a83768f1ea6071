"""Per-answer-position curves of sequence runs in tidy (long) form.

The curves table stores them wide, as float64 metric columns like any other curve (`grokscan.results.schema`):
``{split}_{metric}_pos{i}`` with split train | val, metric loss | acc, i the answer position (0-based; for
add_digits position 0 is the units digit). This module turns them into one row per (run, step, position,
split) with columns ``sweep, run_id, step, position, split, loss, acc``, which plots and group-bys want.
The same reshaping in SQL (DuckDB) is an UNPIVOT of the ``%_pos%`` columns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

from grokscan.results.store import load_curves

POSITION_COLUMN = re.compile(r"^(train|val)_(loss|acc)_pos(\d+)$")
TIDY_COLUMNS = ["sweep", "run_id", "step", "position", "split", "loss", "acc"]

__all__ = ["POSITION_COLUMN", "TIDY_COLUMNS", "load_positions", "position_columns", "positions_long"]


def position_columns(curves: pd.DataFrame) -> list[str]:
    """The per-position curve columns of a curves frame (wide form), in frame order."""
    return [c for c in curves.columns if POSITION_COLUMN.match(str(c))]


def positions_long(curves: pd.DataFrame) -> pd.DataFrame:
    """Tidy per-position curves from a curves frame (`load_curves`): columns TIDY_COLUMNS, sorted by run,
    step, split and position; rows of runs without per-position curves (null there) are dropped."""
    wide = position_columns(curves)
    keys = [c for c in ("sweep", "run_id", "step") if c in curves]
    if not wide or curves.empty:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in TIDY_COLUMNS})
    long = curves[keys + wide].melt(id_vars=keys, var_name="column", value_name="value")
    parts = long["column"].str.extract(POSITION_COLUMN.pattern)
    long = long.assign(split=parts[0], metric=parts[1], position=parts[2].astype("int64"))
    long = long.dropna(subset=["value"])
    tidy = long.pivot_table(
        index=[*keys, "position", "split"], columns="metric", values="value", aggfunc="first"
    ).reset_index()
    tidy.columns.name = None
    for metric in ("loss", "acc"):
        if metric not in tidy:
            tidy[metric] = float("nan")
    if "sweep" not in tidy:
        tidy.insert(0, "sweep", pd.Series(dtype="string"))
    tidy = tidy.astype({"step": "int64", "position": "int64", "loss": "float64", "acc": "float64"})
    return tidy.sort_values(["run_id", "step", "split", "position"], ignore_index=True)[TIDY_COLUMNS]


def load_positions(
    path: str, sweep: str | None = None, run_ids: Iterable[str] | None = None, skip_corrupt: bool = False
) -> pd.DataFrame:
    """Tidy per-position curves of the stored runs (`positions_long` of `load_curves`, same arguments).

    Raises:
        UserError: as `load_curves`.
    """
    return positions_long(load_curves(path, sweep, run_ids=run_ids, skip_corrupt=skip_corrupt))


def _dtype(column: str) -> str:
    return {"step": "int64", "position": "int64", "loss": "float64", "acc": "float64"}.get(column, "object")
