"""Compaction (`grokscan.results.store.compact`) keeps every kept row, also while others read, write and
compact the same sweep, and the `grokscan compact` verb."""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from grokscan.cli import main
from grokscan.config import RunConfig
from grokscan.result import RunResult
from grokscan.results import fragments, store
from grokscan.results.schema import result_rows
from grokscan.results.store import CompactionStats, Store, compact, load_curves, load_runs

STEPS = [50, 100, 150]
DEADLINE_S = 60.0  # a bound on the concurrency loops if something hangs; they finish in a few seconds


def make_result(seed: int, step_gen: int | None = 150, offset: float = 0.0) -> RunResult:
    return RunResult(
        config=RunConfig(seed=seed, task="x-y", p=31, weight_decay=0.5),
        status="ok",
        step_fit=100,
        step_gen=step_gen,
        steps_run=150,
        final={"val_acc": 0.9},
        wall_s=1.0,
        device="cpu",
        pack_size=1,
        curves={"step": STEPS, "val_acc": [offset + i / 10 for i in range(3)]},
    )


def raw_rows(root: Path, kind: str, sweep: str) -> int:
    """Rows in the fragments as stored, before any dedupe (the sweep's hive folder, read by pyarrow)."""
    return ds.dataset(root / kind / f"sweep={sweep}", format="parquet").count_rows()


def n_fragments(root: Path, kind: str, sweep: str) -> int:
    return len(list((root / kind / f"sweep={sweep}").glob("part-*.parquet")))


def in_flight(root: Path, sweep: str, result: RunResult) -> callable:
    """Write `result`'s curves fragment only, as a write does just before its runs fragment lands; returns
    the function that lands the runs fragment."""
    runs, curves = result_rows(sweep, [result], "inflight0123456789")
    filesystem, base = store._resolve(str(root))
    store._put(filesystem, f"{base}/curves/sweep={sweep}", curves)
    return lambda: store._put(filesystem, f"{base}/runs/sweep={sweep}", runs)


def test_compaction_keeps_every_deduped_run_and_curve(tmp_path):
    s = Store(str(tmp_path))
    s.write("k", [make_result(0, offset=0.0), make_result(1, step_gen=None)])
    s.write("k", [make_result(0, offset=5.0)])  # a duplicate: the first row and its curves are kept
    s.write("k", errors=[(make_result(2).config, "node died")])
    s.write("k", [make_result(2)])  # the retry's success beats the error row
    s.write("k", errors=[(make_result(3).config, "boom")])  # an error row alone stays
    land = in_flight(tmp_path, "k", make_result(4))  # curves whose runs row is not written yet
    s.write("other", [make_result(0)])
    runs, curves = load_runs(str(tmp_path), "k"), load_curves(str(tmp_path), "k")
    assert len(runs) == 4 and len(curves) == 9

    stats = compact(str(tmp_path), "k")
    assert stats == CompactionStats(
        "k", fragments_before=9, fragments_after=2, rows_read=6, rows_kept=4, curve_rows_kept=12
    )
    assert n_fragments(tmp_path, "runs", "k") == 1 and n_fragments(tmp_path, "curves", "k") == 1
    pd.testing.assert_frame_equal(load_runs(str(tmp_path), "k"), runs)
    pd.testing.assert_frame_equal(load_curves(str(tmp_path), "k"), curves)
    assert raw_rows(tmp_path, "runs", "k") == 4  # deduped on disk, not only on read
    assert load_curves(str(tmp_path), "k").query("run_id == @runs.run_id[0]").val_acc.max() < 1
    assert len(load_runs(str(tmp_path), "other")) == 1  # other sweeps untouched

    land()  # the in-flight write commits after the compaction: its carried-over curves count now
    assert set(load_curves(str(tmp_path), "k").run_id) == {
        *runs.run_id[runs.status == "ok"],
        make_result(4).run_id,
    }
    assert compact(str(tmp_path), "k").rows_kept == 5
    assert len(load_curves(str(tmp_path), "k")) == 12 and raw_rows(tmp_path, "curves", "k") == 12
    # One fragment per table: nothing to merge, nothing rewritten.
    again = compact(str(tmp_path), "k")
    assert (again.fragments_before, again.fragments_after, again.rows_kept) == (2, 2, 5)


def test_a_write_landing_while_compacting_is_left_alone(tmp_path, monkeypatch):
    """A write whose curves land after compaction listed the runs (and before it lists the curves): its
    curves are carried over, its runs fragment, written later, is not touched."""
    s = Store(str(tmp_path))
    for seed in range(3):
        s.write("k", [make_result(seed)])
    real = store.read_fragments
    late = make_result(9)

    def read_then_write(fs, base, kind, sweep, *args, **kwargs):
        out = real(fs, base, kind, sweep, *args, **kwargs)
        if kind == "runs":
            s.write("k", [late])
        return out

    monkeypatch.setattr(store, "read_fragments", read_then_write)
    stats = compact(str(tmp_path), "k")
    monkeypatch.undo()
    assert (stats.rows_kept, stats.fragments_before, stats.fragments_after) == (3, 7, 3)
    assert n_fragments(tmp_path, "runs", "k") == 2  # the compacted one and the late write's
    assert set(load_runs(str(tmp_path), "k").run_id) == {make_result(i).run_id for i in (0, 1, 2, 9)}
    assert len(load_curves(str(tmp_path), "k")) == 12


@pytest.mark.parametrize("when", ["before footers", "before dataset"])
@pytest.mark.parametrize("skip_corrupt", [False, True])
def test_a_reader_whose_fragments_were_compacted_away_reads_on(tmp_path, monkeypatch, when, skip_corrupt):
    s = Store(str(tmp_path))
    for seed in range(4):
        s.write("k", [make_result(seed)])
    s.write("k", [make_result(0, offset=3.0)])
    expected_runs, expected_curves = load_runs(str(tmp_path)), load_curves(str(tmp_path))
    # The reader has listed (or read the footers of) the fragments; then a compaction deletes them all.
    name = "list_fragments" if when == "before footers" else "_readable"
    real, calls = getattr(fragments, name), []

    def then_compact(*args, **kwargs):
        out = real(*args, **kwargs)
        if not calls:
            calls.append(1)
            compact(str(tmp_path), "k")
        return out

    monkeypatch.setattr(fragments, name, then_compact)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a vanished fragment is not "corrupt": no skipping, no warning
        runs = load_runs(str(tmp_path), skip_corrupt=skip_corrupt)
    assert calls
    pd.testing.assert_frame_equal(runs, expected_runs)
    calls.clear()
    s.write("k", [make_result(7)])
    curves = load_curves(str(tmp_path), skip_corrupt=skip_corrupt)
    assert set(curves.run_id) == {*expected_curves.run_id, make_result(7).run_id} and len(curves) == 15
    calls.clear()
    s.write("k", [make_result(8)])
    assert len(Store(str(tmp_path)).done_run_ids("k")) == 6


def test_reader_writer_and_compactor_at_once_lose_nothing(tmp_path):
    """One thread writes runs (some twice, some failing first), one compacts in a loop, one reads in a
    loop: every read sees at least the runs whose write had returned before it, with their curves, and no
    reader fails."""
    root, n_runs = str(tmp_path), 60
    committed = [0]  # distinct runs whose write has returned
    done, errors = threading.Event(), []
    counts = {"reads": 0, "compactions": 0}
    deadline = time.monotonic() + DEADLINE_S

    def guarded(loop):
        def run():
            try:
                loop()
            except Exception as err:  # noqa: BLE001 (reported by the main thread)
                errors.append(err)
                done.set()

        return run

    def write():
        s = Store(root)
        for seed in range(n_runs):
            if seed % 7 == 3:
                s.write("c", errors=[(make_result(seed).config, "node died")])  # retried just below
            s.write("c", [make_result(seed)])
            committed[0] = seed + 1
            if seed % 5 == 0:
                s.write("c", [make_result(seed // 2, offset=9.0)])  # a duplicate of a stored run
        done.set()

    def compact_loop():
        while not done.is_set() and time.monotonic() < deadline:
            compact(root, "c")
            counts["compactions"] += 1

    def read_loop():
        while not done.is_set() and time.monotonic() < deadline:
            floor = committed[0]
            runs = load_runs(root, "c")
            assert len(runs) >= floor, (len(runs), floor)
            assert (runs.status == "ok").sum() >= floor
            floor = committed[0]
            curves = load_curves(root, "c")
            assert curves.groupby("run_id").size().ge(3).all() and curves.run_id.nunique() >= floor
            # never the duplicates' curves (a read before the first write finds no metric columns yet)
            assert curves.empty or (curves.val_acc < 9).all()
            floor = committed[0]
            assert len(Store(root).done_run_ids("c")) >= floor
            counts["reads"] += 1

    threads = [threading.Thread(target=guarded(f)) for f in (write, compact_loop, read_loop)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S + 10)
    assert not errors, errors
    assert committed[0] == n_runs and counts["compactions"] > 0 and counts["reads"] > 0, counts

    expected = {make_result(seed).run_id for seed in range(n_runs)}
    runs = load_runs(root, "c")
    assert set(runs.run_id) == expected and len(runs) == n_runs and (runs.status == "ok").all()
    assert raw_rows(tmp_path, "runs", "c") >= n_runs
    compact(root, "c")  # alone now: on disk exactly one row per run, three curve rows each
    assert raw_rows(tmp_path, "runs", "c") == n_runs
    assert raw_rows(tmp_path, "curves", "c") == 3 * n_runs
    pd.testing.assert_frame_equal(load_runs(root, "c"), runs)


def test_two_compactions_at_once_lose_nothing(tmp_path, monkeypatch):
    root, s = str(tmp_path), Store(str(tmp_path))
    for seed in range(12):
        s.write("k", [make_result(seed)])
    before_runs, before_curves = load_runs(root), load_curves(root)
    # Both read every fragment before either writes or deletes: the worst overlap, made certain.
    barrier, real_put = threading.Barrier(2, timeout=30), store._put
    waited = set()

    def put_after_both_read(fs, folder, table):
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait()
        real_put(fs, folder, table)

    monkeypatch.setattr(store, "_put", put_after_both_read)
    results, errors = [], []

    def one():
        try:
            results.append(compact(root, "k"))
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    monkeypatch.undo()
    assert not errors, errors
    assert [r.rows_kept for r in results] == [12, 12]
    assert raw_rows(tmp_path, "runs", "k") == 24  # two copies: duplicates, not losses
    pd.testing.assert_frame_equal(load_runs(root), before_runs)
    pd.testing.assert_frame_equal(load_curves(root), before_curves)

    # And unsynchronized, with a writer in between, a few rounds.
    for round_ in range(4):
        s.write("k", [make_result(100 + round_)])
        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors, errors
    expected = {*before_runs.run_id, *(make_result(100 + r).run_id for r in range(4))}
    assert set(load_runs(root).run_id) == expected and len(load_curves(root)) == 3 * len(expected)
    compact(root, "k")
    assert raw_rows(tmp_path, "runs", "k") == len(expected)


def test_compact_verb(tmp_path, capsys):
    root = str(tmp_path / "results")
    s = Store(root)
    for seed in range(3):
        s.write("a", [make_result(seed)])
    s.write("a", [make_result(0)])
    s.write("b", [make_result(0)])
    assert main(["compact", root]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "a: 8 -> 2 fragments, 3 runs kept of 4 runs rows",
        "b: 2 -> 2 fragments, 1 runs kept of 1 runs rows",
    ]
    s.write("b", [make_result(1)])
    assert main(["compact", root, "--sweep", "b"]) == 0
    assert capsys.readouterr().out == "b: 4 -> 2 fragments, 2 runs kept of 2 runs rows\n"
    assert len(load_runs(root)) == 5
    for argv, message in [
        (["compact", str(tmp_path / "none")], "no results under"),
        (["compact", root, "--sweep", "nope"], "no sweep 'nope' under"),
        (["compact", root, "--sweep", "../up"], "no sweep '../up' under"),
    ]:
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.startswith("grokscan: ") and captured.err.count("\n") == 1
        assert message in captured.err
