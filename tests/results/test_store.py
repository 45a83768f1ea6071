from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from grokscan.config import FIELD_NAMES, RunConfig
from grokscan.errors import UserError
from grokscan.result import RunResult
from grokscan.results import store
from grokscan.results.schema import CURVES_SCHEMA, RUNS_SCHEMA, error_rows, result_rows
from grokscan.results.store import Store, compact, load_curves, load_runs

# Curve columns of these tests' runs: the store takes whatever keys RunResult.curves and .final have.
CURVE_METRICS = ("train_acc", "val_acc", "train_loss", "val_loss", "weight_norm", "zero_loss_frac")
V0 = Path(__file__).parent.parent / "fixtures" / "results_v0"  # written by grokscan 0.1 (gap, phase stored)


def runs_columns(metrics=CURVE_METRICS) -> list[str]:
    """load_runs' columns: the declared ones with phase and then final_<metric> after steps_run."""
    i = RUNS_SCHEMA.names.index("steps_run") + 1
    names = RUNS_SCHEMA.names
    return [*names[:i], "phase", *(f"final_{m}" for m in metrics), *names[i:]]


def make_result(
    seed: int = 0, step_gen: int | None = None, wall_s: float = 1.5, offset: float = 0.0
) -> RunResult:
    steps = [50, 100, 150]
    curves = {"step": steps, **{m: [offset + i / 10 for i in range(3)] for m in CURVE_METRICS}}
    return RunResult(
        config=RunConfig(seed=seed, task="x-y", p=31, weight_decay=0.5),
        status="ok",
        step_fit=100,
        step_gen=step_gen,
        steps_run=150,
        final={m: 0.25 for m in CURVE_METRICS},
        wall_s=wall_s,
        device="cpu",
        pack_size=2,
        curves=curves,
    )


def files(root, kind: str, sweep: str) -> list[str]:
    return sorted(os.listdir(root / kind / f"sweep={sweep}"))


def test_round_trip_keeps_every_field_and_nulls(tmp_path):
    results = [make_result(0, step_gen=None), make_result(1, step_gen=150)]
    write_id = Store(str(tmp_path)).write("wd", results)
    df = load_runs(str(tmp_path))
    assert list(df.columns) == runs_columns()
    assert len(df) == 2 and set(df.write_id) == {write_id}
    assert df.sweep.tolist() == ["wd", "wd"] and not isinstance(df.sweep.dtype, pd.CategoricalDtype)
    for r in results:
        row = df[df.run_id == r.run_id].iloc[0]
        for name in FIELD_NAMES:
            expected = getattr(r.config, name)
            assert pd.isna(row[name]) if expected is None else row[name] == expected, name
        assert row.final_val_acc == 0.25 and row.status == "ok" and row.pack_size == 2
    censored = df[df.run_id == results[0].run_id].iloc[0]
    # Fit at 100, trained to 150: too short to tell memorization from late grokking (results.phases).
    assert pd.isna(censored.step_gen) and bool(censored.censored) and censored.phase == "undetermined"
    assert str(df.step_gen.dtype) == "Int64" and df.step_gen.dropna().tolist() == [150]
    assert df.created_at.dt.tz is not None
    curves = load_curves(str(tmp_path))
    assert list(curves.columns) == [*CURVES_SCHEMA.names, *CURVE_METRICS]
    assert len(curves) == 6 and curves.step.tolist() == [50, 100, 150] * 2


def test_duplicate_write_keeps_first_and_its_curves(tmp_path):
    s = Store(str(tmp_path))
    first = s.write("dup", [make_result(0, wall_s=1.0, offset=0.0)])
    second = s.write("dup", [make_result(0, wall_s=9.0, offset=5.0)])
    assert first != second
    df = load_runs(str(tmp_path))
    assert len(df) == 1 and df.wall_s.iloc[0] == 1.0 and df.write_id.iloc[0] == first
    curves = load_curves(str(tmp_path), run_ids=[make_result(0).run_id])
    assert len(curves) == 3 and set(curves.write_id) == {first}
    assert curves.train_acc.tolist() == [0.0, 0.1, 0.2]
    assert s.done_run_ids("dup") == {make_result(0).run_id}


def test_crash_leftovers_are_ignored(tmp_path, monkeypatch):
    s = Store(str(tmp_path))
    s.write("c", [make_result(0)])
    # A fully written file that was never renamed into place.
    runs_tmp, _ = result_rows("c", [make_result(7)], "tmpwrite")
    pq.write_table(runs_tmp.drop_columns(["sweep"]), tmp_path / "runs" / "sweep=c" / ".tmp-deadbeef")
    # A write that dies after its curves fragment, before its runs fragment (the commit record).
    real_put = store._put

    def crash_on_runs(fs, folder, table, name=None):
        if "/runs/" in folder:
            raise OSError("simulated crash")
        real_put(fs, folder, table, name)

    monkeypatch.setattr(store, "_put", crash_on_runs)
    with pytest.raises(OSError):
        s.write("c", [make_result(1)])
    assert len(files(tmp_path, "curves", "c")) == 2
    assert s.done_run_ids() == {make_result(0).run_id}
    assert load_runs(str(tmp_path)).run_id.tolist() == [make_result(0).run_id]
    assert set(load_curves(str(tmp_path)).run_id) == {make_result(0).run_id}
    monkeypatch.undo()
    # Compaction cannot tell a crashed write from one still in flight, so it keeps unmatched curves.
    assert compact(str(tmp_path), "c").rows_kept == 1 and len(load_curves(str(tmp_path))) == 3
    assert pq.read_table(tmp_path / "curves" / "sweep=c" / files(tmp_path, "curves", "c")[0]).num_rows == 6
    assert files(tmp_path, "runs", "c")[0].startswith(".tmp-")  # compact leaves others' temp files alone


def test_error_rows_are_recorded(tmp_path):
    a, b = RunConfig(seed=3), RunConfig(seed=4)
    table = error_rows("e", [a, b], "CUDA out of memory", "w1")
    assert table.schema == RUNS_SCHEMA and table.column("pack_size").to_pylist() == [2, 2]
    Store(str(tmp_path)).write("e", [make_result(0)], errors=[(a, "CUDA out of memory"), (b, "boom")])
    df = load_runs(str(tmp_path))
    err = df[df.status == "error"].set_index("run_id")
    assert set(err.index) == {a.run_id, b.run_id}
    assert err.loc[a.run_id, "error"] == "CUDA out of memory" and err.loc[b.run_id, "error"] == "boom"
    assert err.steps_run.isna().all() and err.step_fit.isna().all() and err.phase.isna().all()
    assert err.censored.all() and (err.wall_s == 0).all()
    assert df[df.status == "ok"].error.isna().all()
    assert len(load_curves(str(tmp_path))) == 3


def test_failed_run_is_retried_and_its_later_success_kept(tmp_path):
    store, ok = Store(str(tmp_path)), make_result(5, step_gen=100)
    store.write("r", errors=[(ok.config, "node died")])
    assert ok.run_id not in store.done_run_ids("r")  # an error row alone does not count as done
    store.write("r", [ok])
    assert store.done_run_ids("r") == {ok.run_id}
    df = load_runs(str(tmp_path), "r")
    assert len(df) == 1 and df.status[0] == "ok" and df.step_gen[0] == 100
    assert len(load_curves(str(tmp_path), "r")) == 3


def test_sweep_filter(tmp_path):
    s = Store(str(tmp_path))
    s.write("a", [make_result(0), make_result(1, step_gen=150)])
    s.write("b", [make_result(0)])
    assert len(load_runs(str(tmp_path))) == 3
    assert load_runs(str(tmp_path), sweep="a").sweep.unique().tolist() == ["a"]
    assert len(load_runs(str(tmp_path), sweep="b")) == 1
    assert set(load_curves(str(tmp_path), sweep="b").sweep) == {"b"} and len(load_curves(str(tmp_path))) == 9
    assert s.done_run_ids("b") == {make_result(0).run_id} and len(s.done_run_ids()) == 2
    assert load_runs(str(tmp_path), sweep="zzz").empty


def test_empty_store(tmp_path):
    df = load_runs(str(tmp_path / "missing"))
    assert df.empty and list(df.columns) == runs_columns(metrics=())
    assert list(load_curves(str(tmp_path / "missing")).columns) == CURVES_SCHEMA.names
    assert Store(str(tmp_path / "missing")).done_run_ids() == set()


def test_compact_dedupes_and_reads_the_same(tmp_path):
    s = Store(str(tmp_path))
    s.write("k", [make_result(0), make_result(1, step_gen=150)])
    s.write("k", [make_result(0, wall_s=7.0, offset=3.0)])
    s.write("k", errors=[(RunConfig(seed=9), "boom")])
    s.write("other", [make_result(0)])
    before_runs, before_curves = load_runs(str(tmp_path), "k"), load_curves(str(tmp_path), "k")
    assert compact(str(tmp_path), "k").rows_kept == 3
    assert len(files(tmp_path, "runs", "k")) == 1 and len(files(tmp_path, "curves", "k")) == 1
    pd.testing.assert_frame_equal(load_runs(str(tmp_path), "k"), before_runs)
    pd.testing.assert_frame_equal(load_curves(str(tmp_path), "k"), before_curves)
    raw = pq.read_table(tmp_path / "runs" / "sweep=k" / files(tmp_path, "runs", "k")[0])
    assert raw.num_rows == 3
    assert len(load_runs(str(tmp_path), "other")) == 1
    # A crash after the new fragments land but before the old ones go: readers still see each row once.
    s.write("k", [make_result(5)])
    saved = {
        kind: {n: (tmp_path / kind / "sweep=k" / n).read_bytes() for n in files(tmp_path, kind, "k")}
        for kind in ("runs", "curves")
    }
    assert compact(str(tmp_path), "k").rows_kept == 4
    for kind, fragments in saved.items():
        for name, data in fragments.items():
            (tmp_path / kind / "sweep=k" / name).write_bytes(data)
    assert len(files(tmp_path, "runs", "k")) == 3
    assert len(load_runs(str(tmp_path), "k")) == 4 and len(load_curves(str(tmp_path), "k")) == 9


@pytest.mark.parametrize("bad", ["", "a/b", "../up", "has space", "x=y"])
def test_bad_sweep_name(tmp_path, bad):
    with pytest.raises(UserError, match="sweep name"):
        Store(str(tmp_path)).write(bad, [make_result(0)])
    with pytest.raises(UserError, match="letters, digits"):
        load_runs(str(tmp_path), sweep=bad)
    assert not (tmp_path / "runs").exists()


def test_readable_without_grokscan(tmp_path):
    s = Store(str(tmp_path))
    s.write("a", [make_result(0), make_result(1, step_gen=150)])
    s.write("b", [make_result(2)], errors=[(RunConfig(seed=8), "boom")])
    (tmp_path / "runs" / "sweep=a" / ".tmp-0123").write_bytes(b"half a file")
    for kind, rows in (("runs", 4), ("curves", 9)):
        folder = str(tmp_path / kind)
        assert len(pd.read_parquet(folder)) == rows
        table = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
        assert table.num_rows == rows and set(table.column("sweep").to_pylist()) == {"a", "b"}
        source = f"read_parquet('{folder}/*/*.parquet', hive_partitioning=true)"
        query = f"select count(*), count(distinct sweep) from {source}"
        assert duckdb.sql(query).fetchall() == [(rows, 2)]
    df = pd.read_parquet(str(tmp_path / "runs"))
    assert df.step_gen.isna().sum() == 3 and (df.status == "error").sum() == 1


def test_object_store_branch_writes_whole_fragments():
    s = Store("mock:///bucket/results")
    s.write("m", [make_result(0)])
    names = [i.base_name for i in s._fs.get_file_info(pa.fs.FileSelector("bucket/results", recursive=True))]
    assert sum(n.startswith("part-") for n in names) == 2 and not any(n.startswith(".tmp") for n in names)
    assert s.done_run_ids("m") == {make_result(0).run_id}


@pytest.mark.parametrize("kind", ["truncated", "foreign"])
def test_corrupt_fragment_is_named_or_skipped_on_request(tmp_path, kind):
    root = str(tmp_path)
    Store(root).write("c", [make_result(0), make_result(1)])
    folder = tmp_path / "runs" / "sweep=c"
    bad = folder / "part-zzz.parquet"
    if kind == "truncated":
        good = next(folder.glob("part-*.parquet"))
        bad.write_bytes(good.read_bytes()[:-100])
    else:
        pq.write_table(pa.table({"x": [1, 2]}), bad)
    with pytest.raises(UserError, match=r"part-zzz\.parquet.*--skip-corrupt"):
        load_runs(root)
    with pytest.raises(UserError, match="part-zzz"):
        Store(root).done_run_ids("c")
    with pytest.warns(UserWarning, match="part-zzz"):
        df = load_runs(root, skip_corrupt=True)
    assert len(df) == 2 and set(df.seed) == {0, 1}


def test_phase_is_named_on_load_with_the_gap(tmp_path):
    # step_fit 100, step_gen 400: 300 steps apart, so grokking exactly when gap < 300.
    results = [make_result(0, step_gen=400), make_result(1, step_gen=None)]
    Store(str(tmp_path)).write("g", results, errors=[(RunConfig(seed=9), "boom")])
    assert "gap" not in load_runs(str(tmp_path)).columns
    for gap, want in ((None, "comprehension"), (300, "comprehension"), (299, "grokking"), (0, "grokking")):
        df = load_runs(str(tmp_path), "g") if gap is None else load_runs(str(tmp_path), "g", gap=gap)
        by_id = df.set_index("run_id")["phase"]
        assert by_id[results[0].run_id] == want, gap
        assert by_id[results[1].run_id] == "undetermined" and pd.isna(by_id[RunConfig(seed=9).run_id])
    raw = pq.read_table(tmp_path / "runs" / "sweep=g" / files(tmp_path, "runs", "g")[0])
    assert not {"phase", "gap"} & set(raw.column_names)  # named at analysis time, never stored
    with pytest.raises(UserError, match="gap"):
        load_runs(str(tmp_path), gap=-1)


def test_results_of_grokscan_0_1_load():
    runs = load_runs(str(V0))
    assert len(runs) == 4 and set(runs.sweep) == {"smoke"} and (runs.status == "ok").all()
    assert list(runs.columns) == runs_columns() and "gap" not in runs.columns
    stored = pd.read_parquet(V0 / "runs").set_index("run_id")  # 0.1 stored gap (1000) and phase
    assert (stored.gap == 1000).all()
    # 0.1 called every fit-only run memorization; these trained 2x their step_fit: undetermined now.
    assert set(stored.phase) == {"memorization"} and set(runs.phase) == {"undetermined"}
    assert runs.final_val_acc.notna().all() and str(runs.step_fit.dtype) == "Int64"
    curves = load_curves(str(V0), "smoke")
    assert list(curves.columns) == [*CURVES_SCHEMA.names, *CURVE_METRICS]
    assert len(curves) > 0 and set(curves.run_id) == set(runs.run_id)
    assert curves[list(CURVE_METRICS)].notna().all().all()
    assert Store(str(V0)).done_run_ids("smoke") == set(runs.run_id)


def test_compacting_old_results_drops_the_retired_columns(tmp_path):
    root = tmp_path / "v0"
    shutil.copytree(V0, root)
    before_runs, before_curves = load_runs(str(root)), load_curves(str(root))
    assert compact(str(root), "smoke").rows_kept == 4
    raw = pq.read_table(root / "runs" / "sweep=smoke" / files(root, "runs", "smoke")[0])
    assert not {"phase", "gap"} & set(raw.column_names)
    pd.testing.assert_frame_equal(load_runs(str(root)), before_runs)
    pd.testing.assert_frame_equal(load_curves(str(root)), before_curves)


def test_a_metric_missing_from_one_write_reads_as_null(tmp_path):
    with_extra = make_result(0, step_gen=150)
    with_extra.curves["grad_norm"] = [3.0, 2.0, 1.0]
    with_extra.final["grad_norm"] = 1.0
    without = make_result(1)
    without.curves.pop("zero_loss_frac")
    without.final.pop("zero_loss_frac")
    s = Store(str(tmp_path))
    s.write("m", [without])
    s.write("m", [with_extra], errors=[(RunConfig(seed=7), "boom")])
    runs = load_runs(str(tmp_path)).set_index("run_id")
    assert {"final_grad_norm", "final_zero_loss_frac"} <= set(runs.columns)
    assert runs.loc[with_extra.run_id, "final_grad_norm"] == 1.0
    assert runs.loc[with_extra.run_id, "final_zero_loss_frac"] == 0.25
    assert runs[["final_grad_norm", "final_zero_loss_frac"]].drop(index=with_extra.run_id).isna().all().all()
    curves = load_curves(str(tmp_path))
    assert str(curves.grad_norm.dtype) == "float64" and len(curves) == 6
    mine = curves.run_id == with_extra.run_id
    assert curves.grad_norm[mine].tolist() == [3.0, 2.0, 1.0] and curves.grad_norm[~mine].isna().all()
    assert curves.zero_loss_frac[~mine].isna().all() and curves.zero_loss_frac[mine].notna().all()
    # One write of both kinds of run, then compaction: the same frames.
    other = tmp_path / "one"
    Store(str(other)).write("m", [without, with_extra], errors=[(RunConfig(seed=7), "boom")])
    compact(str(other), "m")
    columns = sorted(runs.columns)
    one = load_runs(str(other)).set_index("run_id")
    pd.testing.assert_frame_equal(
        one[columns].drop(columns=["created_at", "write_id"]),
        runs[columns].drop(columns=["created_at", "write_id"]),
    )


def test_a_metric_named_like_a_key_is_refused():
    clash = make_result(0)
    clash.curves["run_id"] = [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="run_id"):
        result_rows("x", [clash], "w")


def test_an_idempotent_write_of_the_same_runs_replaces_its_fragments(tmp_path):
    """A trial retried after a lost node re-trains its pack and writes the same runs again: the raw
    fragments still hold each run once; other runs, or the same runs as errors, are other fragments."""
    root, results = str(tmp_path), [make_result(0), make_result(1)]
    first = Store(root).write("s", results, idempotent=True)
    again = Store(root).write("s", [make_result(1, wall_s=9.0), make_result(0)], idempotent=True)
    assert first == again and files(tmp_path, "runs", "s") == [f"part-{first}.parquet"]
    raw = ds.dataset(tmp_path / "runs", partitioning="hive").to_table().to_pandas()
    assert sorted(raw["seed"]) == [0, 1] and set(raw["write_id"]) == {first}
    assert len(ds.dataset(tmp_path / "curves", partitioning="hive").to_table()) == 6
    assert (load_runs(root).set_index("seed").loc[1, "wall_s"]) == 9.0  # the later copy replaced the first
    Store(root).write("s", [make_result(2)], idempotent=True)
    Store(root).write("s", errors=[(make_result(0).config, "boom")], idempotent=True)
    assert len(files(tmp_path, "runs", "s")) == 3
    assert len(ds.dataset(tmp_path / "runs", partitioning="hive").to_table()) == 4


def test_an_invalid_proposal_is_stored_as_an_error_row(tmp_path):
    point = {"task": "x/y", "p": 98, "frac": 0.5, "lr": [1e-3]}  # p not prime; a list fits no column
    run_id = Store(str(tmp_path)).write_invalid("a", point, "RunConfig field 'p' = 98 is invalid: ...")
    row = load_runs(str(tmp_path), "a").set_index("run_id").loc[run_id]
    assert row["status"] == "error" and row["error"].startswith("RunConfig field 'p' = 98")
    assert (row["task"], row["p"], row["frac"]) == ("x/y", 98, 0.5) and pd.isna(row["lr"])
    assert row["censored"] and pd.isna(row["phase"]) and pd.isna(row["steps_run"])
    assert Store(str(tmp_path)).done_run_ids("a") == set()  # an error: a rerun may propose it again
