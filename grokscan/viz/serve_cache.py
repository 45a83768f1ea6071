"""The results cache of `grokscan serve`: `LiveResults` reads each sweep of a results root once per listing
signature of its runs fragments, and keeps the last few views built from it.

A signature hashes the paths, sizes and modification times of a sweep's runs fragments (one listing per
sweep, no file read): a sweep is read again only when it changed, so polls are cheap. Sweep names, columns
and values from the page are only compared with those stored (`scalar` checks the values), never used as
paths. The figures come from `grokscan.viz.serve_maps` and `grokscan.viz.serve_figures`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from typing import Any

import pandas as pd
from pyarrow import fs as pafs

from grokscan.errors import UserError
from grokscan.results.analysis import phase_table
from grokscan.results.phases import DEFAULT_GAP
from grokscan.results.schema import SWEEP_NAME
from grokscan.results.store import load_curves, load_runs, sweeps
from grokscan.viz import serve_figures as figs
from grokscan.viz import serve_maps as maps
from grokscan.viz.style import fmt, grid_axes, pooled_note, varying_columns

__all__ = ["LIVE_N_BOOT", "MAX_CURVE_RUNS", "LiveResults", "scalar"]

LIVE_N_BOOT = 30  # bootstrap resamples of the live scaling fit's band (the static figures use 200)
MAX_CURVE_RUNS = 8  # runs of a clicked cell whose curves are drawn


def scalar(value: Any) -> bool:
    """Whether a value from the page is a JSON scalar (null, text, number or boolean)."""
    return value is None or isinstance(value, (str, int, float, bool))


class LiveResults:
    """The sweeps of one results root, each read once per listing signature of its runs fragments.

    Thread-safe (Dash's server answers requests on several threads); holds each sweep's last frame and the
    last few views built from it.
    """

    def __init__(self, root: str, gap: int = DEFAULT_GAP) -> None:
        """Args:
            root: Results directory or pyarrow filesystem URI (``s3://bucket/prefix``).
            gap: Steps between fit and generalization that separate grokking from comprehension
                (`grokscan.results.phases`).

        Raises:
            UserError: a gap that is not a number of steps >= 0, or a local root that is not a directory.
        """
        if isinstance(gap, bool) or not isinstance(gap, int) or gap < 0:
            raise UserError(f"gap = {gap!r}: must be a number of steps >= 0")
        if "://" in root:
            self._fs, base = pafs.FileSystem.from_uri(root)
        else:
            if not os.path.isdir(root):
                raise UserError(f"{root} is not a directory: serve needs a results directory")
            self._fs, base = pafs.LocalFileSystem(), os.path.abspath(root)
        self.root, self.gap, self._base = root, gap, base.rstrip("/")
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._frames: dict[str, tuple[str, pd.DataFrame]] = {}
        self._known: set[str] = set()  # sweeps of the last listing: the only names served
        self._memo: OrderedDict[tuple, Any] = OrderedDict()

    def signature(self, sweep: str) -> str:
        """A short hash of the sweep's runs fragments (paths, sizes, modification times): it changes when a
        fragment is added, replaced or removed."""
        selector = pafs.FileSelector(f"{self._base}/runs/sweep={sweep}", allow_not_found=True)
        parts = sorted(
            (i.path, i.size, i.mtime_ns)
            for i in self._fs.get_file_info(selector)
            if i.type == pafs.FileType.File
            and i.base_name.startswith("part-")
            and i.path.endswith(".parquet")
        )
        return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()

    def listing(self) -> dict[str, str]:
        """{sweep: signature} of every sweep stored under the root (sweep names grokscan accepts only)."""
        out = {s: self.signature(s) for s in sweeps(self.root) if SWEEP_NAME.fullmatch(s)}
        self._known = set(out)
        return out

    def runs(self, sweep: str) -> tuple[str, pd.DataFrame]:
        """(signature, runs frame) of one sweep (`load_runs`, phases named with the gap), read again only
        when its signature changed since the last read.

        Raises:
            UserError: a sweep that is not stored under the root, or a fragment that is not grokscan's.
        """
        if not isinstance(sweep, str) or (sweep not in self._known and sweep not in self.listing()):
            raise UserError(f"no sweep {sweep!r} under {self.root}")
        with self._lock:
            lock = self._locks.setdefault(sweep, threading.Lock())
        with lock:
            sig = self.signature(sweep)
            cached = self._frames.get(sweep)
            if cached is None or cached[0] != sig:
                cached = (sig, load_runs(self.root, sweep, gap=self.gap))
                self._frames[sweep] = cached
            return cached

    def _memoized(self, key: tuple, build: Any) -> Any:
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        value = build()
        with self._lock:
            self._memo[key] = value
            while len(self._memo) > 64:
                self._memo.popitem(last=False)
        return value

    def summary(self, names: list[str]) -> pd.DataFrame:
        """`serve_figures.sweep_summary` of the named sweeps."""
        return figs.sweep_summary({name: self.runs(name)[1] for name in names})

    def view(self, sweep: str, x: str | None, y: str | None, filters: dict[str, Any]) -> dict:
        """Figures of one sweep's view: ``phase``, ``time``, ``scaling`` (plotly dicts), and ``axes`` (the
        resolved x, y and filters, as a click needs them) and ``note``. Unknown columns fall back to the
        default axes; filters on columns that do not vary, or on x or y, are ignored."""
        sig, runs = self.runs(sweep)
        varying = varying_columns(runs) if len(runs) else []
        x = x if x in varying else None
        y = y if y in varying and y != x else None
        try:
            x, y = grid_axes(runs, x, y)
        except UserError as err:
            message = figs.message_figure(str(err))
            return {"phase": message, "time": message, "scaling": message, "axes": None, "note": str(err)}
        filters = {c: v for c, v in filters.items() if c in varying and c not in (x, y) and v != figs.ALL}
        key = ("view", sweep, sig, x, y, json.dumps(filters, sort_keys=True))
        return self._memoized(key, lambda: self._build_view(sweep, runs, x, y, filters))

    def _build_view(self, sweep: str, runs: pd.DataFrame, x: str, y: str | None, filters: dict) -> dict:
        chosen = figs.select(runs, filters)
        note = pooled_note(chosen, (x, y)) if len(chosen) else ""
        table = phase_table(chosen, x, y)
        numeric = [c for c in (x, y) if c is not None and figs.numeric(chosen, c)]
        if numeric:
            other = next((c for c in (x, y) if c is not None and c != numeric[0]), None)
            scaling = figs.scaling_figure(chosen, numeric[0], other, n_boot=LIVE_N_BOOT)
        else:
            scaling = figs.message_figure("no scaling fit: neither axis is a numeric column")
        where = ", ".join(f"{c}={fmt(v)}" for c, v in filters.items())
        text = f"{len(chosen):,} of {len(runs):,} runs" + (f" with {where}" if where else "")
        return {
            "phase": maps.phase_figure(table, x, y, note),
            "time": maps.time_figure(table, x, y, note),
            "scaling": scaling,
            "axes": {"sweep": sweep, "x": x, "y": y, "filters": filters},
            "note": text,
        }

    def cell_curves(self, axes: dict, x_value: Any, y_value: Any) -> dict:
        """Curves figure of the runs of one cell of a view (`axes` as `view` returned them): up to
        `MAX_CURVE_RUNS` of them, finished ones first, by seed."""
        sweep, x, y = axes["sweep"], axes["x"], axes["y"]
        if not (scalar(x_value) and scalar(y_value) and all(map(scalar, axes["filters"].values()))):
            raise UserError("a cell's values are numbers, text or null")
        sig, runs = self.runs(sweep)
        where = {**axes["filters"], x: x_value, **({} if y is None else {y: y_value})}
        unknown = set(where) - set(varying_columns(runs))
        if unknown:
            raise UserError(f"{sweep}: no column(s) {sorted(unknown)} vary; reload the page")
        cell = figs.select(runs, where)
        cell = cell.assign(_failed=cell["status"] != "ok").sort_values(["_failed", "seed", "run_id"])
        shown = cell.head(MAX_CURVE_RUNS)
        ids = tuple(shown["run_id"])
        label = ", ".join(f"{c}={'none' if v is None else fmt(v)}" for c, v in where.items())
        title = f"{label}: {len(cell)} run(s)" + (f", {len(shown)} shown" if len(shown) < len(cell) else "")
        if not ids:
            return figs.message_figure(f"{label}: no runs")

        def build() -> dict:
            curves = load_curves(self.root, sweep, run_ids=ids)
            return figs.curves_figure(shown, curves, title)

        return self._memoized(("curves", sweep, sig, ids, title), build)
