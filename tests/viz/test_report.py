"""The HTML report and the `report` verb, on the synthetic results of test_plots (no training)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from test_plots import make_result, write_frac_scan, write_sweep

from grokscan.cli import main
from grokscan.results.store import Store
from grokscan.viz.report import load_sweep, write_report
from grokscan.viz.style import PHASE_COLORS

CHROMIUM = "/usr/bin/chromium"
IMAGE = "data:image/png;base64,"
V0 = Path(__file__).parent.parent / "fixtures" / "results_v0"  # written by grokscan 0.1


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("report")
    results = write_sweep(root / "results")
    return results, write_report(results, "syn", root / "out" / "syn.html")


def test_report_is_one_self_contained_page(report):
    results, path = report
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    images = re.findall(rf'<img alt="(\w+) figure" src="{IMAGE}[A-Za-z0-9+/]+=*">', page)
    assert {"phase", "time", "curves"} <= set(images) and page.count(IMAGE) == len(images)
    assert not re.search(r"https?://", page) and "<script" not in page and "<link" not in page
    assert f'runs = grokscan.load_runs("{Path(results).resolve()}", sweep="syn")' in page
    assert f"{Path(results).resolve()}/runs/sweep=syn/" in page
    # definition: varied columns with their values, then the fixed settings
    assert re.search(r"<th class=\"l\">weight_decay</th><td class=\"l\">0.1, 1.0, 10.0</td>", page)
    assert "Grid: frac × weight_decay × seeds" in page and "task=x+y" in page and "steps=4000" in page
    # counts by status and phase
    assert re.search(r"<td>error</td>\s*<td>1</td>", page) and re.search(
        r"<td>grokking</td>\s*<td>4</td>", page
    )
    assert "1 run has no phase" in page
    assert "Per-cell table" in page and "median_step_gen" in page
    assert "gap = 1,000 steps" in page and "gap=" not in page.split("<pre>")[1]


def test_report_names_phases_with_the_gap(report, tmp_path):
    results, _ = report
    page = write_report(results, "syn", tmp_path / "gap.html", gap=3400).read_text(encoding="utf-8")
    assert "gap = 3,400 steps" in page and ", gap=3400)" in page
    assert not re.search(r"<td>grokking</td>", page) and re.search(
        r"<td>comprehension</td>\s*<td>10</td>", page
    )
    name, runs = load_sweep(results, gap=3400)
    assert name == "syn" and not (runs.phase == "grokking").any()


def test_report_cli_and_fit_table(tmp_path, monkeypatch, capsys):
    results = write_frac_scan(tmp_path / "results")
    monkeypatch.chdir(tmp_path)
    assert main(["report", results]) == 0  # the only sweep; default output <sweep>_report.html
    assert "fracscan_report.html" in capsys.readouterr().out
    page = (tmp_path / "fracscan_report.html").read_text()
    assert page.count(f'<img alt="scaling figure" src="{IMAGE}') == 1
    for header in ("b 95% CI", "slowdown per -0.1", "n censored", "frac at budget"):
        assert f"<th>{header}</th>" in page
    assert re.search(r"<td>\[\d\.\d+, \d\.\d+\]</td>", page)  # b's CI
    for argv, message in [
        (["report", results, "--sweep", "nope"], "no sweep 'nope' under"),
        (["report", str(tmp_path / "none")], "no runs stored under"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_report_notes_what_cannot_be_drawn(tmp_path):
    """One grid cell (two seeds): no phase map, no time map, no fit; the page says why instead."""
    Store(str(tmp_path)).write(
        "cell", [make_result(0.5, 1.0, seed, 300, 2000 + 100 * seed) for seed in (0, 1)]
    )
    page = write_report(str(tmp_path), "cell", tmp_path / "cell.html").read_text()
    assert page.count("nothing varies in this sweep apart from seeds") == 3  # phase, time, per-cell table
    assert "No fit: frac does not vary in this sweep" in page
    assert page.count(IMAGE) == 1 and 'alt="curves figure"' in page


def _chromium(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=90)


def _console_errors(stderr: str) -> list[str]:
    return [
        line for line in stderr.splitlines() if "CONSOLE" in line and ("Error" in line or "Uncaught" in line)
    ]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)")
def test_report_renders_in_a_headless_browser(report, tmp_path):
    _, path = report
    # A copy with a probe script (the report itself has none) that writes each image's decoded width.
    probe = tmp_path / "probe.html"
    script = (
        "<script>addEventListener('load', () => document.body.setAttribute('data-widths', "
        "Array.from(document.images, i => i.naturalWidth).join(',')));</script>"
    )
    probe.write_text(path.read_text().replace("</body>", f"{script}</body>"))
    dom = _chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri(), tmp_path=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    widths = re.search(r'data-widths="([\d,]*)"', dom.stdout)
    assert widths, dom.stdout[-2000:]
    n_images = path.read_text().count("<img ")
    assert n_images >= 3 and [int(w) > 300 for w in widths.group(1).split(",")] == [True] * n_images
    assert not _console_errors(dom.stderr)

    shot = tmp_path / "shot.png"
    done = _chromium(f"--screenshot={shot}", "--window-size=1200,3000", path.as_uri(), tmp_path=tmp_path)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    assert not _console_errors(done.stderr)
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (3000, 1200) and pixels.var() > 1e-3
    # The phase map was decoded and painted: its grokking colour covers a visible area of the page.
    grokking = np.array(matplotlib.colors.to_rgb(PHASE_COLORS["grokking"]))
    assert (np.abs(pixels - grokking).max(axis=-1) < 0.02).sum() > 2000


def test_ci_installs_chromium_before_the_tests():
    ci = (Path(__file__).parents[2] / ".ci" / "run").read_text()
    assert "apt-get install -y -qq chromium" in ci and ci.index("chromium") < ci.index("pytest -q")


def test_results_and_viz_need_neither_torch_nor_ray(tmp_path):
    """Load grokscan 0.1's results, tabulate, plot and report them in a fresh interpreter: no torch, no ray
    (and no RunConfig built: that would load the registries' torch entries)."""
    code = f"""
import sys
from grokscan.results.analysis import phase_table
from grokscan.results.store import load_curves, load_runs
from grokscan.viz.figures import phase_diagram
from grokscan.viz.report import write_report

runs = load_runs({str(V0)!r})
table = phase_table(runs, "frac", "weight_decay", gap=50)
phase_diagram(runs, gap=50).savefig({str(tmp_path / "phase.png")!r})
phase_diagram(runs, kind="curves", curves=load_curves({str(V0)!r}, "smoke"))
page = write_report({str(V0)!r}, "smoke", {str(tmp_path / "smoke.html")!r}).read_text()
bad = [m for m in ("torch", "ray") if m in sys.modules]
assert not bad, bad
print(len(runs), len(table), page.count("<img "))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["4", "4", "3"]  # 4 runs, 4 cells; phase, time and curves figures
