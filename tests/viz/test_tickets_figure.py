"""The ticket comparison figure (viz.tickets) and its report section, on a synthetic runs frame."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from grokscan.errors import UserError
from grokscan.viz.figures import phase_diagram
from grokscan.viz.report import _tickets

BUDGET = 4000
# (ticket, weight_decay) -> step_gen at prune rates 0.4, 0.6, 0.8 for seeds 0 and 1; None: never generalized
STEP_GEN = {
    ("magnitude", 1.0): [(900, 1100), (700, 800), (1500, 1700)],
    ("random", 1.0): [(None, None), (None, 3000), (None, None)],
    ("dense_l2", 1.0): [(2500, 2600), (2400, 2300), (2000, 2100)],
    ("magnitude", 0.0): [(None, 3900), (1800, 2000), (None, None)],
}


def _runs() -> pd.DataFrame:
    rows = []
    for (ticket, wd), cells in STEP_GEN.items():
        for rate, pair in zip((0.4, 0.6, 0.8), cells, strict=True):
            for seed, gen in enumerate(pair):
                rows.append(dict(ticket=ticket, weight_decay=wd, prune_rate=rate, seed=seed, step_gen=gen))
    for wd, seed in itertools.product((1.0, 0.0), (0, 1)):
        rows.append(
            dict(ticket="none", weight_decay=wd, prune_rate=None, seed=seed, step_gen=3500 if wd else None)
        )
    runs = pd.DataFrame(rows).assign(status="ok", steps_run=BUDGET)
    runs["step_gen"] = runs["step_gen"].astype("Int64")
    return runs


def test_one_panel_per_weight_decay_medians_and_dense_line():
    fig = phase_diagram(_runs(), kind="tickets")
    assert [ax.get_title() for ax in fig.axes] == ["weight_decay=1", "weight_decay=0"]
    wd1 = fig.axes[0]
    lines = {line.get_label(): line for line in wd1.lines}
    ticket = lines["ticket (magnitude)"]
    np.testing.assert_allclose(ticket.get_xdata(), np.array([0.4, 0.6, 0.8]) - 1.5 * 0.04 * 0.2)  # dodged
    np.testing.assert_array_equal(ticket.get_ydata(), [1000, 750, 1600])  # medians over the two seeds
    # random at 0.6: one seed censored at the budget -> median (4000 + 3000) / 2, not censored (half)
    np.testing.assert_array_equal(lines["random mask"].get_ydata(), [4000, 3500, 4000])
    assert lines["dense net"].get_ydata()[0] == 3500
    wd0 = {line.get_label(): line for line in fig.axes[1].lines}
    assert (
        "dense net (never generalized)" in wd0
        and wd0["dense net (never generalized)"].get_linestyle() == "--"
    )
    # open markers (no face) only where more than half the seeds never generalized
    open_points = [c for c in wd1.collections if len(c.get_facecolor()) == 0]
    assert sum(len(c.get_offsets()) for c in open_points) == 2  # random at 0.4 and 0.8


def test_not_a_ticket_sweep():
    runs = _runs()
    plain = runs[runs["ticket"] == "none"]
    with pytest.raises(UserError, match="kind='tickets' needs"):
        phase_diagram(plain, kind="tickets")
    assert _tickets(plain) == "" and 'alt="tickets figure"' in _tickets(runs)
