from __future__ import annotations

import textwrap

import pytest

from grokscan.config import RunConfig
from grokscan.space import SpaceError, load_space, parse_override

HEADER = "from ray import tune\n"


def write(tmp_path, body: str, name: str = "space.py"):
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def test_expands_grid_in_order_and_reads_settings(tmp_path):
    path = write(
        tmp_path,
        """
        name = "demo"
        pack_size = 4
        resources = {"cpu": 1, "gpu": 0.25}
        param_space = {"p": 11, "frac": tune.grid_search([0.3, 0.5]), "seed": tune.grid_search([0, 1, 2])}
    """,
    )
    sweep = load_space(path)
    assert sweep.name == "demo" and sweep.pack_size == 4 and sweep.resources == {"cpu": 1.0, "gpu": 0.25}
    assert len(sweep.configs) == 6
    assert sweep.axes == {"frac": [0.3, 0.5], "seed": [0, 1, 2]}
    assert [(c.frac, c.seed) for c in sweep.configs][:4] == [(0.3, 0), (0.3, 1), (0.3, 2), (0.5, 0)]
    assert all(isinstance(c, RunConfig) and c.p == 11 for c in sweep.configs)


def test_name_defaults_to_file_stem_and_duplicates_collapse(tmp_path):
    # heads does not apply to the MLP, so both grid points are the same run
    path = write(tmp_path, 'param_space = {"p": 7, "heads": tune.grid_search([2, 4])}', name="my_sweep.py")
    sweep = load_space(path)
    assert sweep.name == "my_sweep" and len(sweep.configs) == 1


def test_overrides_replace_values_and_make_grids(tmp_path):
    path = write(tmp_path, 'param_space = {"p": 11, "seed": tune.grid_search([0, 1, 2])}')
    sweep = load_space(path, ["seed=0", "p=[7, 13]", "steps=100", "task=x-y"])
    assert [(c.p, c.seed, c.steps, c.task) for c in sweep.configs] == [
        (7, 0, 100, "x-y"),
        (13, 0, 100, "x-y"),
    ]
    assert parse_override("loss=stablemax") == ("loss", "stablemax")


BAD = {
    "syntax": ("param_space = {", "syntax error"),
    "import_error": ("import not_a_module_xyz\nparam_space = {}", "importing the file failed"),
    "missing": ("import math", "no `param_space`"),
    "not_dict": ("param_space = [1]", "non-empty dict"),
    "unknown_key": ('param_space = {"weight_decy": 1.0}', "did you mean 'weight_decay'"),
    "unknown_setting": ('param_spaces = {}\nparam_space = {"p": 7}', "unknown setting 'param_spaces'"),
    "wrong_type": ('param_space = {"p": "97"}', "'p' = '97'"),
    "frac_range": ('param_space = {"frac": tune.grid_search([0.5, 1.2])}', "strictly between 0 and 1"),
    "not_prime": ('param_space = {"task": "x/y", "p": 96}', "must be prime"),
    "negative_lr": ('param_space = {"lr": -0.1}', "'lr'"),
    "negative_wd": ('param_space = {"weight_decay": tune.grid_search([1.0, -1.0])}', "'weight_decay'"),
    "empty_grid": ('param_space = {"seed": tune.grid_search([])}', "empty grid"),
    "bare_list": ('param_space = {"seed": [0, 1]}', "tune.grid_search"),
    "sampled": ('param_space = {"lr": tune.loguniform(1e-4, 1e-2)}', "sampled domain"),
    "unknown_task": ('param_space = {"task": "x+z"}', "did you mean 'x+y'"),
    "unknown_model": ('param_space = {"model": "transfromer"}', "did you mean 'transformer'"),
    "unknown_optimizer": ('param_space = {"optimizer": "adamw2"}', "did you mean 'adamw'"),
    "bad_resources": ('resources = {"tpu": 1}\nparam_space = {"p": 7}', "unknown key 'tpu'"),
    "bad_pack_size": ('pack_size = 0\nparam_space = {"p": 7}', "pack_size = 0"),
    "bad_name": ('name = "a b"\nparam_space = {"p": 7}', "name = 'a b'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_space_names_file_and_problem(tmp_path, case):
    body, expected = BAD[case]
    path = write(tmp_path, body)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_missing_and_non_python_files(tmp_path):
    with pytest.raises(SpaceError, match="no such search-space file"):
        load_space(tmp_path / "nope.py")
    other = tmp_path / "space.txt"
    other.write_text("param_space = {}")
    with pytest.raises(SpaceError, match="ending in .py"):
        load_space(other)


def test_bad_override(tmp_path):
    path = write(tmp_path, 'param_space = {"p": 7}')
    with pytest.raises(SpaceError, match="key=value"):
        load_space(path, ["steps"])
    with pytest.raises(SpaceError, match="unknown key 'stepz'"):
        load_space(path, ["stepz=10"])


def test_shipped_spaces_load():
    from pathlib import Path

    for path in sorted(Path(__file__).parent.parent.joinpath("search_spaces").glob("*.py")):
        sweep = load_space(path)
        assert sweep.configs, path
