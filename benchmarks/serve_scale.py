"""`grokscan serve` at scale: the server side of the live page on a 100,000-run sweep.

Builds a synthetic results directory with the real writer (RunResult objects from RunConfig, tiny curves,
`Store.write` in batches of 10,000: no training), then times, through the app's Flask server (Werkzeug's
test client: routing, the Dash callback and its JSON encoding, no network), each request the page makes:
the first load (page, layout, the listing poll, the sweep choice, which reads the sweep, the sweeps table,
the controls and the first view), a view of other axes or a filter (figures built from the cached frame),
the same view again (memoized), a poll when nothing changed, a poll after a new fragment landed (the sweep
is read again and the view rebuilt), and a cell's curves (`load_curves` of its runs). Times are wall
seconds of this one process.

Synthetic truth: frac (10 values) × weight_decay (5) × lr (4) × 500 seeds; log step_gen = 12 − 8·frac +
0.3·N(0, 1) on the 50-step eval grid, censored at 4,000 steps; weight decay moves step_fit.

    python benchmarks/serve_scale.py [--runs 100000] [--batch 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time

import dash
import numpy as np
import pandas as pd
import plotly
import pyarrow as pa

from grokscan.config import RunConfig
from grokscan.result import RunResult
from grokscan.results.store import Store
from grokscan.viz.serve import create_app

FRACS = tuple(round(0.3 + 0.05 * i, 2) for i in range(10))
WEIGHT_DECAYS = (0.1, 0.3, 1.0, 3.0, 10.0)
LRS = (3e-4, 1e-3, 3e-3, 1e-2)
STEPS, EVAL = 4000, 50
SWEEP = "bench"


def results(n: int, start: int = 0, seed: int = 0) -> list[RunResult]:
    """Runs start..start+n of the synthetic grid, each with a 5-point accuracy curve."""
    rng = np.random.default_rng(seed + start)
    cells = len(FRACS) * len(WEIGHT_DECAYS) * len(LRS)
    out = []
    for i in range(start, start + n):
        frac = FRACS[i % len(FRACS)]
        wd = WEIGHT_DECAYS[(i // len(FRACS)) % len(WEIGHT_DECAYS)]
        lr = LRS[(i // (len(FRACS) * len(WEIGHT_DECAYS))) % len(LRS)]
        config = RunConfig(task="x+y", p=59, frac=frac, weight_decay=wd, lr=lr, seed=i // cells, steps=STEPS)
        gen = math.ceil(math.exp(12 - 8 * frac + 0.3 * rng.standard_normal()) / EVAL) * EVAL
        fit = math.ceil(300 * (1 + 0.3 * math.log10(10 / wd)) / EVAL) * EVAL
        gen = gen if gen <= STEPS else None
        steps_run = STEPS if gen is None else min(max(fit, gen) + 3 * EVAL, STEPS)
        steps = np.linspace(0, steps_run, 5).round().astype(int)
        train = (steps >= fit).astype(float) * 0.98 + 0.01
        val = (steps >= (gen or STEPS + 1)).astype(float) * 0.98 + 0.01
        curves = {"step": steps.tolist(), "train_acc": train.tolist(), "val_acc": val.tolist()}
        out.append(
            RunResult(
                config=config,
                status="ok",
                step_fit=fit,
                step_gen=gen,
                steps_run=int(steps_run),
                final={"train_acc": float(train[-1]), "val_acc": float(val[-1])},
                wall_s=1.0,
                device="cpu",
                pack_size=256,
                curves=curves,
            )
        )
    return out


class Page:
    """Posts the requests the browser posts, built from the app's own ``/_dash-dependencies``."""

    def __init__(self, app: dash.Dash) -> None:
        self.client = app.server.test_client()
        self.deps = self.client.get("/_dash-dependencies").get_json()

    def call(self, output: str, values: dict, filters: dict | None = None, changed: str = "") -> dict:
        """Run the callback whose output names `output`; `values` maps "id.property" to a value, `filters`
        a filter column to its dropdown value (the pattern-matching inputs and states)."""
        spec = next(d for d in self.deps if output in d["output"])

        def item(dep: dict) -> dict | list:
            if dep["id"].startswith("{"):  # pattern-matching: one entry per filter dropdown
                kind = json.loads(dep["id"])["type"]
                return [
                    {
                        "id": {"column": c, "type": kind},
                        "property": dep["property"],
                        "value": {"column": c, "type": kind} if dep["property"] == "id" else v,
                    }
                    for c, v in (filters or {}).items()
                ]
            key = f"{dep['id']}.{dep['property']}"
            return {"id": dep["id"], "property": dep["property"], "value": values.get(key)}

        outputs = [
            {"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[1]}
            for o in spec["output"].strip(".").split("...")
        ]
        payload = {
            "output": spec["output"],
            "outputs": outputs if spec["output"].startswith("..") else outputs[0],
            "inputs": [item(d) for d in spec["inputs"]],
            "state": [item(d) for d in spec["state"]],
            "changedPropIds": [changed] if changed else [],
        }
        response = self.client.post("/_dash-update-component", json=payload)
        if response.status_code == 204:  # every output was no_update
            return {}
        assert response.status_code == 200, response.data[:500]
        return response.get_json()["response"]


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def session(root: str, store: Store, record, next_run: int) -> int:
    """One fresh app (nothing cached) through the page's requests; returns the view's JSON size."""
    page = Page(create_app(root))
    t0 = time.perf_counter()
    record("GET / (page)", timed(lambda: page.client.get("/"))[0])
    record("GET /_dash-layout", timed(lambda: page.client.get("/_dash-layout"))[0])
    s, out = timed(lambda: page.call("listing.data", {}))
    record("poll (listing signature)", s)
    listing = out["listing"]["data"]
    s, out = timed(lambda: page.call("sweep.options", {"listing.data": listing}))
    record("sweep choice (reads the sweep: load_runs)", s)
    assert out["sweep"]["value"] == SWEEP
    table = {"listing.data": listing, "sweep.value": SWEEP}
    record("sweeps table", timed(lambda: page.call("sweeps.children", table))[0])
    sig = {"sweep": SWEEP, "sig": listing[SWEEP]}
    s, out = timed(lambda: page.call("x.options", {"sweep-sig.data": sig}))
    record("controls", s)
    assert {"frac", "weight_decay", "lr"} <= set(out["x"]["options"])
    view = {"sweep-sig.data": sig, "x.value": "frac", "y.value": "weight_decay"}
    pooled = {"lr": "__all__"}
    s, out = timed(lambda: page.call("phase-map.figure", view, pooled, "x.value"))
    record("first view (phase table, maps, scaling fit)", s)
    record("first load in all (the requests above)", time.perf_counter() - t0)
    size = len(json.dumps(out))

    swapped = {**view, "x.value": view["y.value"], "y.value": view["x.value"]}
    record(
        "view, axes swapped (frame cached)", timed(lambda: page.call("phase-map.figure", swapped, pooled))[0]
    )
    one_lr = {"lr": json.dumps(LRS[1])}
    record(
        "view, filter lr=1e-3 (frame cached)", timed(lambda: page.call("phase-map.figure", view, one_lr))[0]
    )
    record("same view again (memoized)", timed(lambda: page.call("phase-map.figure", view, pooled))[0])
    record("poll, nothing changed", timed(lambda: page.call("listing.data", {"listing.data": listing}))[0])

    store.write(SWEEP, results(1, next_run))

    def landed() -> dict:
        new = page.call("listing.data", {"listing.data": listing})["listing"]["data"]
        page.call("sweeps.children", {"listing.data": new, "sweep.value": SWEEP})
        return page.call(
            "phase-map.figure", {**view, "sweep-sig.data": {"sweep": SWEEP, "sig": new[SWEEP]}}, pooled
        )

    record("a run lands: poll, re-read, sweeps table, view", timed(landed)[0])
    axes = page.call("phase-map.figure", view, pooled)["view"]["data"]
    cell = {"axes": axes, "x": FRACS[4], "y": WEIGHT_DECAYS[2]}
    s, out = timed(lambda: page.call("curves.figure", {"cell.data": cell, "sweep-sig.data": sig}))
    drawn = {t["legendgroup"] for t in out["curves"]["figure"]["data"]}
    record(f"cell curves (load_curves, {len(drawn)} runs drawn)", s)
    return size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"device: {platform.platform()}, {_cpu()}, {os.cpu_count()} CPUs (os.cpu_count)")
    print(
        f"python {sys.version.split()[0]}, dash {dash.__version__}, plotly {plotly.__version__}, "
        f"pandas {pd.__version__}, pyarrow {pa.__version__}"
    )
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as root:
        t = time.perf_counter()
        store = Store(root)
        for start in range(0, args.runs, args.batch):
            store.write(SWEEP, results(min(args.batch, args.runs - start), start))
        print(
            f"setup: {args.runs:,} runs in {math.ceil(args.runs / args.batch)} fragments "
            f"({time.perf_counter() - t:.0f} s, not timed below)"
        )
        for k in range(args.repeats):
            size = session(root, store, lambda name, s: times.setdefault(name, []).append(s), args.runs + k)
    print(f"view response: {size / 1e3:.0f} kB of JSON (three figures)")
    print(f"{'request':52s} {'median s':>9s} {'min s':>7s}  ({args.repeats} fresh apps)")
    for name, values in times.items():
        print(f"{name:52s} {statistics.median(values):9.3f} {min(values):7.3f}")


if __name__ == "__main__":
    main()
