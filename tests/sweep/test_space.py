from __future__ import annotations

import textwrap

from grokscan.config import RunConfig
from grokscan.sweep.domains import parse_override
from grokscan.sweep.space import load_space

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


def test_shipped_spaces_load():
    import re
    import shlex
    from pathlib import Path

    for path in sorted(Path(__file__).parents[2].joinpath("search_spaces").glob("*.py")):
        sweep = load_space(path)
        assert sweep.configs or sweep.search, path
        # Each runs on a laptop at its default size; a paper preset (at the paper's size) at its CPU size.
        cpu_size = re.search(r"CPU size[^:]*:(.*)", path.read_text().split('"""')[1], re.S)
        if cpu_size:
            sweep = load_space(path, shlex.split(cpu_size.group(1))[1::2])
        assert 0 < sweep.max_runs <= 200, path
