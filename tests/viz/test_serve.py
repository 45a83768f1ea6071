"""The live `serve` app: figure builders, HTTP-level safety (Flask's test client and raw requests), and the
page in a real browser (Debian's chromium driven by Playwright).

The synthetic sweep "live" is frac (0.3, 0.5, 0.7) × weight_decay (0.1, 1, 10) × seeds 0, 1 with a known
phase per cell (`LAYOUT`), censored runs, accuracy curves for every run and one failed run; no training.
"""

from __future__ import annotations

import http.client
import inspect
import io
import json
import socket
import threading
import time
from pathlib import Path

import dash
import matplotlib.image
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from grokscan.config import RunConfig
from grokscan.errors import UserError
from grokscan.result import RunResult
from grokscan.results.analysis import phase_table
from grokscan.results.phases import PHASES
from grokscan.results.store import Store, load_runs
from grokscan.viz import serve_figures as figs
from grokscan.viz import serve_maps as maps
from grokscan.viz.serve import create_app, serve
from grokscan.viz.serve_cache import LiveResults
from grokscan.viz.style import PHASE_COLORS

CHROMIUM = "/usr/bin/chromium"
STEPS, EVAL, SWEEP = 4000, 50, "live"
# (frac, weight_decay) -> (step_fit, step_gen) of seeds 0 and 1; None: never reached within STEPS.
LAYOUT = {
    (0.3, 0.1): [(250, None), (300, None)],  # memorization
    (0.5, 0.1): [(2000, None), (2500, None)],  # undetermined: 4,000 steps is under 10x step_fit
    (0.7, 0.1): [(300, None), (300, 3650)],  # mixed
    (0.3, 1.0): [(300, 3500), (350, 3600)],  # grokking
    (0.5, 1.0): [(300, 2200), (300, 2400)],  # grokking
    (0.7, 1.0): [(300, 800), (250, 900)],  # comprehension
    (0.3, 10.0): [(None, None), (None, None)],  # confusion
    (0.5, 10.0): [(400, 450), (400, 500)],  # comprehension
    (0.7, 10.0): [(300, 350), (300, 400)],  # comprehension
}
MAJORITY = {
    (0.3, 0.1): "memorization",
    (0.5, 0.1): "undetermined",
    (0.3, 1.0): "grokking",
    (0.5, 1.0): "grokking",
    (0.7, 1.0): "comprehension",
    (0.3, 10.0): "confusion",
    (0.5, 10.0): "comprehension",
    (0.7, 10.0): "comprehension",
}


def make_result(frac: float, wd: float, seed: int, fit: int | None, gen: int | None) -> RunResult:
    steps_run = STEPS if fit is None or gen is None else min(max(fit, gen) + 3 * EVAL, STEPS)
    steps = np.arange(0, steps_run + 1, EVAL)

    def rise(at: int | None) -> list[float]:
        if at is None:
            return (0.02 + 0.05 * steps / STEPS).tolist()
        return (0.02 + 0.98 / (1 + np.exp(-8 * (np.log(np.maximum(steps, 1)) - np.log(at))))).tolist()

    curves = {"step": steps.tolist(), "train_acc": rise(fit), "val_acc": rise(gen)}
    return RunResult(
        config=RunConfig(task="x+y", p=31, frac=frac, weight_decay=wd, seed=seed, steps=STEPS),
        status="ok",
        step_fit=fit,
        step_gen=gen,
        steps_run=int(steps_run),
        final={m: v[-1] for m, v in curves.items() if m != "step"},
        wall_s=1.0,
        device="cpu",
        pack_size=18,
        curves=curves,
    )


def write_sweep(root: Path) -> list[RunResult]:
    results = [
        make_result(f, w, s, fit, gen) for (f, w), pair in LAYOUT.items() for s, (fit, gen) in enumerate(pair)
    ]
    failed = RunConfig(task="x+y", p=31, frac=0.7, weight_decay=10.0, seed=2, steps=STEPS)
    Store(str(root)).write(SWEEP, results, errors=[(failed, "RuntimeError: simulated failure")])
    return results


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> tuple[Path, list[RunResult]]:
    root = tmp_path_factory.mktemp("serve") / "results"
    return root, write_sweep(root)


@pytest.fixture(scope="module")
def runs(results_dir) -> pd.DataFrame:
    return load_runs(str(results_dir[0]), SWEEP)


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # one line per poll otherwise
        pass


class Server:
    """`create_app(root)` served on 127.0.0.1 by Werkzeug in a thread, on a port the OS picks."""

    def __init__(self, root: Path) -> None:
        self.app = create_app(str(root))
        self._server = make_server("127.0.0.1", 0, self.app.server, threaded=True, request_handler=_Quiet)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(10)


@pytest.fixture(scope="module")
def server(results_dir):
    srv = Server(results_dir[0])
    yield srv
    srv.close()


# ---------------------------------------------------------------- figure builders (pure functions of frames)


def test_axis_values_and_select_treat_null_as_a_value():
    frame = pd.DataFrame({"a": pd.array([2, None, 1, 2], dtype="Int64"), "b": ["x", "y", "x", "y"]})
    assert figs.axis_values(frame["a"]) == [1, 2, None]
    assert all(type(v) is int for v in figs.axis_values(frame["a"])[:2])  # JSON-able, not numpy
    assert figs.select(frame, {"a": None})["b"].tolist() == ["y"]
    assert figs.select(frame, {"a": 2, "b": "y"}).index.tolist() == [3]
    assert len(figs.select(frame, {"a": figs.ALL, "missing": 3})) == 4


def test_sweep_summary_counts_status_phase_and_last_update(runs):
    summary = figs.sweep_summary({SWEEP: runs, "empty": runs.iloc[:0]}).set_index("sweep")
    row = summary.loc[SWEEP]
    assert (row["runs"], row["ok"], row["error"], row["diverged"]) == (19, 18, 1, 0)
    assert sum(row[p] for p in PHASES) == 18
    assert row["last_update"] == runs["created_at"].max()
    assert summary.loc["empty", "runs"] == 0 and pd.isna(summary.loc["empty", "last_update"])


def test_phase_figure_cells_colours_and_click_data(runs):
    table = phase_table(runs, "frac", "weight_decay")
    fig = maps.phase_figure(table, "frac", "weight_decay", "")
    go.Figure(fig)  # a valid plotly figure
    trace = fig["data"][0]
    assert trace["x"] == ["0.3", "0.5", "0.7"] and trace["y"] == ["0.1", "1", "10"]
    z = np.array(trace["z"], dtype=float)
    assert z.shape == (3, 3)
    for (frac, wd), phase in MAJORITY.items():
        i, j = [0.1, 1.0, 10.0].index(wd), [0.3, 0.5, 0.7].index(frac)
        assert PHASES[int(z[i, j])] == phase
        assert json.loads(trace["customdata"][i][j]) == [frac, wd]
    assert trace["text"][0][2] == "50%"  # (0.7, 0.1): seeds disagree
    colours = [c for _, c in trace["colorscale"]]
    assert [colours[2 * k] for k in range(len(PHASES))] == [PHASE_COLORS[p] for p in PHASES]


def test_time_figure_marks_over_budget_cells(runs):
    table = phase_table(runs, "frac", "weight_decay")
    fig = maps.time_figure(table, "frac", "weight_decay")
    go.Figure(fig)
    trace = fig["data"][0]
    z = np.array(trace["z"], dtype=float)
    assert trace["text"][0][0] == "> 4,000"  # (0.3, 0.1): every seed censored at the budget
    assert z[0, 0] == trace["zmax"] and trace["colorscale"][-1][1] == "#c8c8c8"
    assert trace["colorbar"]["ticktext"][-1] == "> budget"
    assert trace["text"][1][1] == "2,300"  # (0.5, 1): Kaplan–Meier median of 2200 and 2400
    assert z[1, 1] == pytest.approx(np.log10(2300))
    assert "> budget" in fig["layout"]["title"]["text"]


def test_colour_scales_never_decrease():
    """Plotly drops a colorscale whose stops decrease, even by one rounding error, for its default."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        median = np.exp(rng.uniform(4, 9, 3))
        over = rng.random(3) < 0.4
        table = pd.DataFrame(
            {
                "frac": [0.4, 0.5, 0.6],
                "median_step_gen": np.where(over, np.nan, median),
                "step_gen_over_budget": over,
                "budget": pd.array([3000] * 3, dtype="Int64"),
                "phase": ["grokking"] * 3,
                "phase_share": [1.0] * 3,
                "n": [2] * 3,
                "n_failed": [0] * 3,
            }
        )
        stops = [p for p, _ in maps.time_figure(table, "frac", None)["data"][0]["colorscale"]]
        assert stops[0] == 0 and stops[-1] == 1 and stops == sorted(stops)


def test_scaling_figure_draws_the_censored_fit(runs):
    fig = figs.scaling_figure(runs[runs["weight_decay"] == 1.0], "frac", None, n_boot=20)
    go.Figure(fig)
    fits = [t for t in fig["data"] if t.get("mode") == "lines" and "b = " in t.get("name", "")]
    assert len(fits) == 1 and len(fits[0]["x"]) == len(fits[0]["y"]) > 2
    assert np.all(np.diff(fits[0]["y"]) < 0)  # step_gen falls as frac grows
    grouped = figs.scaling_figure(runs, "frac", "weight_decay", n_boot=0)
    assert len([t for t in grouped["data"] if "weight_decay=" in t.get("name", "")]) >= 3
    assert "not a numeric column" in json.dumps(figs.scaling_figure(runs, "task"))


def test_curves_figure_one_pair_of_lines_per_run(results_dir, runs):
    from grokscan.results.store import load_curves

    cell = runs[(runs["frac"] == 0.5) & (runs["weight_decay"] == 1.0)]
    curves = load_curves(str(results_dir[0]), SWEEP, run_ids=cell["run_id"])
    fig = figs.curves_figure(cell, curves, "frac=0.5, weight_decay=1")
    go.Figure(fig)
    lines = [t for t in fig["data"] if t["mode"] == "lines"]
    assert sorted({t["legendgroup"] for t in lines}) == sorted(cell["run_id"])
    assert len(lines) == 4 and fig["layout"]["xaxis"]["type"] == "log"
    assert "no stored accuracy curves" in json.dumps(figs.curves_figure(cell, curves.iloc[:0], "t"))


# ---------------------------------------------------------------- the cache and the HTTP surface


def test_live_results_reread_only_when_fragments_change(tmp_path):
    write_sweep(tmp_path)
    live = LiveResults(str(tmp_path))
    sig, frame = live.runs(SWEEP)
    assert live.runs(SWEEP)[1] is frame  # nothing changed: no read
    assert live.listing() == {SWEEP: sig}
    Store(str(tmp_path)).write(SWEEP, [make_result(0.5, 1.0, 7, 300, 2000)])
    new_sig, new_frame = live.runs(SWEEP)
    assert new_sig != sig and len(new_frame) == len(frame) + 1
    with pytest.raises(UserError, match="no sweep"):
        live.runs("other")
    with pytest.raises(UserError, match="not a directory"):
        LiveResults(str(tmp_path / "missing"))
    with pytest.raises(UserError, match="gap"):
        create_app(str(tmp_path), gap=-1)


def test_serve_listens_on_loopback_by_default(tmp_path, monkeypatch):
    defaults = {k: v.default for k, v in inspect.signature(serve).parameters.items()}
    assert defaults["host"] == "127.0.0.1" and defaults["port"] == 8050
    seen = {}
    monkeypatch.setattr(dash.Dash, "run", lambda self, **kwargs: seen.update(kwargs))
    serve(str(tmp_path), port=_free_port())
    assert seen["host"] == "127.0.0.1" and seen["debug"] is False
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(UserError, match="cannot listen on 127.0.0.1"):
            serve(str(tmp_path), port=busy.getsockname()[1])
    with pytest.raises(UserError, match="port"):
        serve(str(tmp_path), port=70000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TRAVERSALS = [
    "/../../secret.txt",
    "/%2e%2e/%2e%2e/secret.txt",
    "/%2E%2E%2F%2E%2E%2Fsecret.txt",
    "/..%2f..%2fsecret.txt",
    "/assets/../../secret.txt",
    "/assets/%2e%2e/%2e%2e/secret.txt",
    "/assets/serve.py",
    "/_dash-component-suites/dash/../../../../secret.txt",
    "/_dash-component-suites/grokscan/viz/serve.py",
    "/_dash-component-suites/dash/%2e%2e/%2e%2e/etc/passwd",
    "/../../../../../../etc/passwd",
    "/static/../../etc/passwd",
    "/results/runs/sweep=live",
]


def _check_not_a_file(status: int, body: bytes, secret: bytes) -> None:
    assert status in (200, 404), status
    assert secret not in body and b"root:" not in body and b"PAR1" not in body and b"import " not in body
    if status == 200:
        assert b"_dash-config" in body  # the app page, nothing else


def test_no_route_serves_a_file_path(tmp_path, results_dir):
    secret = b"not-to-be-served-" + str(time.time_ns()).encode()
    (tmp_path / "secret.txt").write_bytes(secret)
    (tmp_path / "results").symlink_to(results_dir[0])
    client = create_app(str(tmp_path / "results")).server.test_client()
    fragment = next((results_dir[0] / "runs" / f"sweep={SWEEP}").glob("part-*.parquet"))
    for path in [*TRAVERSALS, f"/runs/sweep={SWEEP}/{fragment.name}", f"/{fragment}"]:
        response = client.get(path)
        _check_not_a_file(response.status_code, response.data, secret)


def test_no_raw_request_reads_a_file(server):
    """Paths sent byte for byte (no client-side normalization) to the real server."""
    secret = Path("/etc/passwd").read_bytes()[:8] or b"\0never"
    for path in TRAVERSALS:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", path)
        response = connection.getresponse()
        _check_not_a_file(response.status, response.read(), secret)
        connection.close()


def test_page_uses_no_cdn_and_a_bad_sweep_is_a_message(server):
    client = server.app.server.test_client()
    page = client.get("/").data.decode()
    scripts = [s.split('"')[1] for s in page.split("<script src=")[1:]]
    assert scripts and all(s.startswith("/_dash-component-suites/") for s in scripts)
    assert "http://" not in page and "https://" not in page
    deps = client.get("/_dash-dependencies").get_json()
    spec = next(d for d in deps if "phase-map.figure" in d["output"])
    outputs = [
        dict(zip(("id", "property"), o.rsplit(".", 1), strict=True))
        for o in spec["output"][2:-2].split("...")
    ]
    payload = {
        "output": spec["output"],
        "outputs": outputs,
        "inputs": [
            {"id": "sweep-sig", "property": "data", "value": {"sweep": "../../etc", "sig": ""}},
            {"id": "x", "property": "value", "value": "frac"},
            {"id": "y", "property": "value", "value": None},
            [],
        ],
        "state": [[]],
        "changedPropIds": ["x.value"],
    }
    response = client.post("/_dash-update-component", json=payload)
    assert response.status_code == 200
    assert "no sweep '../../etc'" in response.get_json()["response"]["view-note"]["children"]


# ---------------------------------------------------------------- the page in a real browser


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield chromium
        chromium.close()


class Page:
    """A browser page on the app, recording console errors and uncaught page errors."""

    def __init__(self, browser, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1300})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url)
        for selector in ("#phase-map .heatmaplayer image", "#sweeps-table", "#n-runs"):
            self.page.wait_for_selector(selector, timeout=20_000)

    def graph(self, name: str, expression: str):
        return self.page.evaluate(
            f"() => {{ const gd = document.querySelector('#{name} .js-plotly-plot'); {expression} }}"
        )

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser, server):
    p = Page(browser, server.url)
    yield p
    p.close()


def test_page_loads_without_console_errors(page):
    assert SWEEP in page.page.inner_text("#sweeps-table")
    time.sleep(2.5)  # at least one poll of the store
    assert page.errors == []


def test_phase_map_renders_its_cells(page):
    shape = page.graph("phase-map", "const z = gd.data[0].z; return [z.length, z[0].length];")
    assert shape == [3, 3]
    page.page.wait_for_function("() => document.querySelector('#time-map .heatmaplayer image') !== null")
    png = page.page.locator("#phase-map").screenshot()
    pixels = matplotlib.image.imread(io.BytesIO(png))[..., :3]
    colours = {tuple(c) for c in (pixels.reshape(-1, 3) * 255).round().astype(int)}
    assert len(colours) > 20  # not blank

    def shown(hex_colour: str) -> bool:
        rgb = np.array([int(hex_colour[k : k + 2], 16) for k in (1, 3, 5)])
        return bool((np.abs(pixels * 255 - rgb).max(axis=-1) <= 3).sum() > 200)

    assert all(shown(PHASE_COLORS[p]) for p in PHASES)  # every phase occurs in LAYOUT


def test_clicking_a_cell_shows_its_runs_curves(page, results_dir):
    ids = sorted(r.run_id for r in results_dir[1] if (r.config.frac, r.config.weight_decay) == (0.5, 1.0))
    shown = (
        "ids => { const gd = document.querySelector('#curves .js-plotly-plot');"
        "  const lines = (gd && gd.data || []).filter(t => t.mode === 'lines');"
        "  const got = new Set(lines.map(t => t.legendgroup));"
        "  return ids.every(i => got.has(i)) && got.size === ids.length; }"
    )
    page.page.wait_for_load_state("networkidle")
    for attempt in range(3):  # the page may still be laying out (the map moves) or re-rendering: retry
        where = page.graph(
            "phase-map",
            "const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();"
            "const i = gd.data[0].x.indexOf('0.5'), j = gd.data[0].y.indexOf('1');"  # category positions
            "return [box.left + xa._offset + xa.l2p(i), box.top + ya._offset + ya.l2p(j)];",
        )
        page.page.mouse.move(*where)
        page.page.mouse.click(*where)
        try:
            page.page.wait_for_function(shown, arg=ids, timeout=4_000)
            break
        except Exception:
            if attempt == 2:
                raise
    assert page.page.locator("#curves .scatterlayer .trace path.js-line").count() == 4
    assert page.errors == []


def test_a_run_that_lands_shows_up_without_a_reload(browser, tmp_path):
    write_sweep(tmp_path)
    srv = Server(tmp_path)
    try:
        p = Page(browser, srv.url)
        before = int(p.page.inner_text("#n-runs").replace(",", ""))
        Store(str(tmp_path)).write(
            SWEEP, [make_result(0.5, 1.0, 5, 300, 3000), make_result(0.5, 1.0, 6, 300, 3100)]
        )
        p.page.wait_for_function(
            f"() => parseInt(document.querySelector('#n-runs').innerText.replace(/,/g, '')) === {before + 2}",
            timeout=10_000,
        )
        # The maps follow: (0.5, 1)'s median over 4 seeds (2200, 2400, 3000, 3100) is 2700 now.
        p.page.wait_for_function(
            "() => document.querySelector('#time-map .js-plotly-plot').data[0].text[1][1] === '2,700'",
            timeout=10_000,
        )
        assert p.errors == []
        p.close()
    finally:
        srv.close()
