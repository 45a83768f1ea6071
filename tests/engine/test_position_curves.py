"""Per-position curves of sequence runs through the store: wide float64 columns of the curves table
(``{train,val}_{loss,acc}_pos{i}``), the tidy loader `grokscan.results.positions.load_positions`, and
the same files read by pandas and DuckDB; a table task's run beside them keeps its columns (null here)."""

from __future__ import annotations

import glob

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from grokscan.config import RunConfig
from grokscan.engine.loop import train_runs
from grokscan.results.positions import TIDY_COLUMNS, load_positions, position_columns, positions_long
from grokscan.results.store import Store, load_curves, load_runs

TF = dict(model="transformer", width=8, heads=2, d_mlp=12, steps=20, eval_every=10)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("seq_results"))
    configs = [
        RunConfig(task="add_digits", n_digits=2, train_size=30, val_size=20, **TF),
        RunConfig(task="add_digits", n_digits=2, regime="infinite", batch_size=16, val_size=20, **TF),
        RunConfig(task="max_of_seq", vocab=7, seq_len=4, train_size=30, val_size=20, **TF),
        RunConfig(task="x+y", p=7, width=8, steps=20, eval_every=10),
    ]
    results = train_runs(configs)
    Store(root).write("seq", results)
    return root, configs, results


def test_wide_columns_round_trip_through_the_store(stored) -> None:
    root, configs, results = stored
    curves = load_curves(root, "seq")
    add, stream, top, table = (c.run_id for c in configs)
    wide = position_columns(curves)
    kinds = [f"{split}_{metric}" for split in ("train", "val") for metric in ("loss", "acc")]
    assert {f"{kind}_pos{i}" for kind in kinds for i in range(3)} == set(wide)
    assert all(curves[c].dtype == "float64" for c in wide)
    assert curves.loc[curves["run_id"] == table, wide].isna().all().all()
    assert curves.loc[curves["run_id"] == top, "val_loss_pos1"].isna().all()  # one answer position
    for result in results[:3]:
        rows = curves[curves["run_id"] == result.run_id].sort_values("step")
        for column in (c for c in wide if c in result.curves):
            assert rows[column].tolist() == result.curves[column]
    runs = load_runs(root, "seq").set_index("run_id")
    assert runs.loc[add, "final_val_loss_pos2"] == results[0].final["val_loss_pos2"]
    assert runs.loc[stream, "regime"] == "infinite" and pd.isna(runs.loc[stream, "train_size"])
    assert runs.loc[add, "n_digits"] == 2 and pd.isna(runs.loc[table, "n_digits"])


def test_tidy_loader(stored) -> None:
    root, configs, results = stored
    tidy = load_positions(root, "seq")
    assert list(tidy.columns) == TIDY_COLUMNS
    assert set(tidy["run_id"]) == {c.run_id for c in configs[:3]}  # the table task has no positions
    assert set(tidy["split"]) == {"train", "val"} and tidy["position"].dtype == "int64"
    n_evals = len(results[0].curves["step"])
    add = tidy[tidy["run_id"] == configs[0].run_id]
    assert len(add) == n_evals * 2 * 3
    last = add[(add["step"] == results[0].steps_run) & (add["split"] == "val") & (add["position"] == 1)]
    assert last["loss"].item() == results[0].final["val_loss_pos1"]
    assert last["acc"].item() == results[0].final["val_acc_pos1"]
    only = load_positions(root, "seq", run_ids=[configs[2].run_id])
    assert set(only["run_id"]) == {configs[2].run_id} and set(only["position"]) == {0}
    empty = positions_long(load_curves(root, "seq", run_ids=[configs[3].run_id]))
    assert empty.empty and list(empty.columns) == TIDY_COLUMNS


def test_pandas_and_duckdb_read_the_files(stored) -> None:
    root, configs, results = stored
    frame = pd.read_parquet(f"{root}/curves")
    assert "val_loss_pos2" in frame and frame["sweep"].astype(str).eq("seq").all()
    (fragment,) = glob.glob(f"{root}/curves/sweep=seq/*.parquet")
    assert pq.read_schema(fragment).field("val_acc_pos0").type == "double"
    query = f"""
        UNPIVOT (SELECT run_id, step, COLUMNS('_pos[0-9]+$')
                 FROM read_parquet('{root}/curves/*/*.parquet', hive_partitioning = true)
                 WHERE run_id = '{configs[0].run_id}')
        ON COLUMNS('_pos[0-9]+$') INTO NAME metric VALUE value
    """
    long = duckdb.sql(query).df()
    assert len(long) == len(results[0].curves["step"]) * 12
    final = long[(long["step"] == results[0].steps_run) & (long["metric"] == "val_loss_pos0")]
    assert final["value"].item() == results[0].final["val_loss_pos0"]
