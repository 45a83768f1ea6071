"""`grokscan serve`: a live, read-only web view of a results directory (local or ``s3://``), on Dash.

This module holds the page: its layout, its callbacks, the app and the server. The page lists the sweeps
(runs by status and phase, last update) and shows, for the selected sweep, the phase map and the median
step_gen map (`grokscan.viz.serve_maps`), the censored scaling fit and, for a clicked cell, its runs' curves
(`grokscan.viz.serve_figures`). Every 2 s the page asks for a listing signature of each sweep's runs
fragments (their paths, sizes and modification times: one listing per sweep, no file read); a sweep is read
again only when its signature changed (`grokscan.viz.serve_cache.LiveResults`), so a running sweep's views
update as runs land, and polls are cheap.

Safety: it listens on 127.0.0.1 unless told otherwise; no route takes a file path (sweep names, columns and
values from the page are only compared with those stored); it writes nothing; results are read as Parquet
only, and Dash's JavaScript is served from the installed Python packages (no CDN, works offline).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
from typing import Any

import dash
import pandas as pd
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import DependencyException

from grokscan.errors import UserError
from grokscan.results.phases import DEFAULT_GAP, PHASES
from grokscan.viz import serve_figures as figs
from grokscan.viz.serve_cache import LiveResults, scalar
from grokscan.viz.style import PHASE_COLORS, fmt, grid_axes, varying_columns

__all__ = ["create_app", "serve"]

POLL_MS = 2000
_NO_ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_serve_serves_no_assets")
_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.2em 2em; color: #222 }
h1 { font-size: 1.35em; margin: .6em 0 .1em } .root { color: #666; margin-bottom: .8em }
table.sweeps { border-collapse: collapse; font-size: 13px; margin-bottom: .8em }
table.sweeps th, table.sweeps td { border: 1px solid #ddd; padding: 2px 8px; text-align: right }
table.sweeps th { background: #f6f6f6 } table.sweeps td.l, table.sweeps th.l { text-align: left }
table.sweeps tr.selected td { background: #fff6dd; font-weight: 600 }
.controls { display: flex; flex-wrap: wrap; gap: 12px; align-items: end; margin: .4em 0 }
.control { min-width: 170px } .control label { display: block; color: #555; font-size: 12px }
.row { display: flex; flex-wrap: wrap } .row > div { flex: 1 1 560px; min-width: 0 }
.note { color: #666 }
"""


def _sweeps_table(summary: pd.DataFrame, selected: str | None) -> html.Table:
    head = ["sweep", "runs", "ok", "diverged", "error", *PHASES, "last update (UTC)"]
    cells = [html.Th(h, className="l" if h in ("sweep", "last update (UTC)") else None) for h in head]
    for p, cell in zip(PHASES, cells[5:], strict=False):
        cell.style = {"color": PHASE_COLORS[p]}
    rows = [html.Tr(cells)]
    for r in summary.to_dict("records"):
        last = r["last_update"]
        when = "" if pd.isna(last) else pd.Timestamp(last).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S")
        values = [r[c] for c in head[1:-1]]
        tds = [html.Td(r["sweep"], className="l"), *(html.Td(f"{v:,}") for v in values)]
        tds.append(html.Td(when, className="l"))
        rows.append(html.Tr(tds, className="selected" if r["sweep"] == selected else None))
    return html.Table(rows, className="sweeps", id="sweeps-table")


def _control(label: str, child: Any, box_id: Any = None, hidden: bool = False) -> html.Div:
    style = {"display": "none"} if hidden else {}
    kwargs = {"id": box_id} if box_id is not None else {}
    return html.Div([html.Label(label), child], className="control", style=style, **kwargs)


def _layout(root: str) -> html.Div:
    def graph(name: str, text: str) -> dcc.Graph:
        return dcc.Graph(id=name, figure=figs.message_figure(text), config={"displaylogo": False})

    return html.Div(
        [
            html.H1("grokscan serve"),
            html.Div(f"results: {root} (read-only; updates as runs land)", className="root"),
            dcc.Interval(id="poll", interval=POLL_MS),
            dcc.Store(id="listing"),
            dcc.Store(id="sweep-sig"),
            dcc.Store(id="controls-key"),
            dcc.Store(id="view"),
            dcc.Store(id="cell"),
            html.Div(id="sweeps", children="reading the results…"),
            html.Div(
                [
                    _control("sweep", dcc.Dropdown(id="sweep", clearable=False)),
                    _control("x axis", dcc.Dropdown(id="x", clearable=False)),
                    _control("y axis", dcc.Dropdown(id="y", clearable=True, placeholder="auto")),
                    html.Div(id="filters", className="controls"),
                ],
                className="controls",
            ),
            html.Div(id="sweep-count"),
            html.Div(id="view-note", className="note"),
            html.Div([graph("phase-map", "loading…"), graph("time-map", "loading…")], className="row"),
            html.Div(
                [graph("scaling", "loading…"), graph("curves", "click a cell of a map: its runs' curves")],
                className="row",
            ),
        ]
    )


def _filter_values(values: list, ids: list) -> dict[str, Any]:
    """{column: value} of the filter dropdowns (their values are JSON text); anything else is dropped."""
    out = {}
    for i, v in zip(ids, values, strict=False):
        if isinstance(i, dict) and isinstance(i.get("column"), str) and isinstance(v, str):
            try:
                value = figs.ALL if v == figs.ALL else json.loads(v)
            except ValueError:
                continue
            if scalar(value):
                out[i["column"]] = value
    return out


def _callbacks(app: dash.Dash, live: LiveResults) -> None:
    filter_ids = State({"type": "filter", "column": ALL}, "id")

    @app.callback(Output("listing", "data"), Input("poll", "n_intervals"), State("listing", "data"))
    def poll(_: int | None, old: dict | None) -> Any:
        new = live.listing()
        return no_update if new == old else new

    @app.callback(
        Output("sweep", "options"),
        Output("sweep", "value"),
        Input("listing", "data"),
        State("sweep", "value"),
    )
    def on_listing(listing: dict | None, current: str | None) -> Any:
        if not listing or current in listing:
            return sorted(listing or []), no_update
        try:  # the most recently updated sweep
            summary = live.summary(sorted(listing))
            value = summary.sort_values("last_update", ascending=False, na_position="last")["sweep"].iloc[0]
        except UserError:
            value = sorted(listing)[0]
        return sorted(listing), value

    @app.callback(Output("sweeps", "children"), Input("listing", "data"), Input("sweep", "value"))
    def on_table(listing: dict | None, sweep: str | None) -> Any:
        if not listing:
            return html.Div(f"no sweeps under {live.root} yet (waiting for runs/sweep=NAME/)")
        try:
            return _sweeps_table(live.summary(sorted(listing)), sweep)
        except UserError as err:  # e.g. a foreign file among the fragments: say which, keep polling
            return html.Div(str(err), className="note")

    @app.callback(
        Output("sweep-sig", "data"),
        Input("listing", "data"),
        Input("sweep", "value"),
        State("sweep-sig", "data"),
    )
    def on_sweep(listing: dict | None, sweep: str | None, old: dict | None) -> Any:
        if not listing or sweep not in listing:
            return no_update
        new = {"sweep": sweep, "sig": listing[sweep]}
        return no_update if new == old else new

    @app.callback(
        Output("sweep-count", "children"),
        Input("sweep-sig", "data"),
    )
    def on_count(sig: dict | None) -> Any:
        if not sig:
            return no_update
        try:
            row = live.summary([sig["sweep"]]).iloc[0]
        except UserError:
            return no_update
        text = (
            f" runs in {row['sweep']}: {row['ok']:,} ok, {row['diverged']:,} diverged, {row['error']:,} error"
        )
        return [html.B(f"{row['runs']:,}", id="n-runs"), text]

    @app.callback(
        Output("x", "options"),
        Output("x", "value"),
        Output("y", "options"),
        Output("y", "value"),
        Output("filters", "children"),
        Output("controls-key", "data"),
        Input("sweep-sig", "data"),
        State("x", "value"),
        State("y", "value"),
        State({"type": "filter", "column": ALL}, "value"),
        filter_ids,
        State("controls-key", "data"),
    )
    def on_controls(sig: dict | None, x: Any, y: Any, values: list, ids: list, old: str | None) -> Any:
        if not sig:
            return (no_update,) * 6
        try:
            _, runs = live.runs(sig["sweep"])
        except UserError:
            return (no_update,) * 6
        varying = varying_columns(runs) if len(runs) else []
        levels = {c: figs.axis_values(runs[c]) for c in varying}
        key = hashlib.blake2b(json.dumps([sig["sweep"], levels]).encode(), digest_size=8).hexdigest()
        if key == old:
            return (no_update,) * 6
        try:
            x, y = grid_axes(runs, x if x in varying else None, y if y in varying and y != x else None)
        except UserError:
            x, y = None, None
        kept = _filter_values(values, ids)
        boxes = []
        for c in varying:
            options = [{"label": "all (pooled)", "value": figs.ALL}]
            options += [{"label": "none" if v is None else fmt(v), "value": json.dumps(v)} for v in levels[c]]
            value = json.dumps(kept[c]) if c in kept and kept[c] in levels[c] else figs.ALL
            dropdown = dcc.Dropdown(
                id={"type": "filter", "column": c}, options=options, value=value, clearable=False
            )
            box = {"type": "filter-box", "column": c}
            boxes.append(_control(f"filter: {c}", dropdown, box, hidden=c in (x, y)))
        return varying, x, varying, y, boxes, key

    @app.callback(
        Output({"type": "filter-box", "column": ALL}, "style"),
        Input("x", "value"),
        Input("y", "value"),
        State({"type": "filter-box", "column": ALL}, "id"),
    )
    def on_axes(x: Any, y: Any, ids: list) -> list:
        return [{"display": "none"} if i["column"] in (x, y) else {} for i in ids]

    @app.callback(
        Output("phase-map", "figure"),
        Output("time-map", "figure"),
        Output("scaling", "figure"),
        Output("view-note", "children"),
        Output("view", "data"),
        Input("sweep-sig", "data"),
        Input("x", "value"),
        Input("y", "value"),
        Input({"type": "filter", "column": ALL}, "value"),
        filter_ids,
    )
    def on_view(sig: dict | None, x: Any, y: Any, values: list, ids: list) -> Any:
        if not sig:
            return (no_update,) * 5
        try:
            view = live.view(sig["sweep"], x, y, _filter_values(values, ids))
        except UserError as err:
            message = figs.message_figure(str(err))
            return message, message, message, str(err), None
        out = []
        for name in ("phase", "time", "scaling"):
            figure = view[name]
            # Same revision across data updates: a zoom or hidden legend entry survives new runs landing.
            revision = json.dumps([sig["sweep"], view["axes"] and view["axes"]["x"], name])
            out.append({**figure, "layout": {**figure["layout"], "uirevision": revision}})
        return (*out, view["note"], view["axes"])

    @app.callback(
        Output("cell", "data"),
        Input("phase-map", "clickData"),
        Input("time-map", "clickData"),
        State("view", "data"),
        prevent_initial_call=True,
    )
    def on_click(phase_click: dict | None, time_click: dict | None, axes: dict | None) -> Any:
        click = phase_click if ctx.triggered_id == "phase-map" else time_click
        try:
            x_value, y_value = json.loads(click["points"][0]["customdata"])
        except (TypeError, KeyError, IndexError, ValueError):
            return no_update
        return {"axes": axes, "x": x_value, "y": y_value} if axes else no_update

    @app.callback(Output("curves", "figure"), Input("cell", "data"), Input("sweep-sig", "data"))
    def on_cell(cell: dict | None, sig: dict | None) -> Any:
        if not cell or not sig or cell["axes"]["sweep"] != sig["sweep"]:
            return figs.message_figure("click a cell of a map: its runs' curves")
        try:
            return live.cell_curves(cell["axes"], cell["x"], cell["y"])
        except UserError as err:
            return figs.message_figure(str(err))


def create_app(root: str, gap: int = DEFAULT_GAP) -> dash.Dash:
    """The Dash app of a results root (see the module doc); its Flask server is ``app.server``, and the
    `LiveResults` behind it ``app.live``.

    Args:
        root: Results directory or pyarrow filesystem URI (``s3://bucket/prefix``).
        gap: Phase threshold in steps (`grokscan.results.phases`).

    Raises:
        UserError: a bad gap, or a local root that is not a directory.
    """
    live = LiveResults(root, gap)
    app = dash.Dash(
        __name__,
        title="grokscan serve",
        update_title=None,
        serve_locally=True,
        assets_folder=_NO_ASSETS,
        include_assets_files=False,
        compress=False,
        enable_mcp=False,
    )
    # Dash answers a component-suite path it does not serve with a 500 and a traceback: make it a 404.
    app.server.register_error_handler(DependencyException, lambda _: ("not found", 404))
    app.index_string = app.index_string.replace("{%css%}", "{%css%}\n<style>" + _CSS + "</style>")
    app.layout = _layout(root)
    _callbacks(app, live)
    app.live = live
    return app


def _check_address(host: str, port: int) -> None:
    """Raise UserError unless `port` on `host` can be bound now (Werkzeug would print and exit instead)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UserError(f"port = {port!r}: must be a number from 1 to 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise UserError(f"host {host!r} does not resolve ({err}): use an address such as 127.0.0.1") from err
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it
        try:
            probe.bind(address)
        except OSError as err:
            raise UserError(f"cannot listen on {host}:{port} ({err.strerror}): pick another --port") from err


def serve(root: str, host: str = "127.0.0.1", port: int = 8050, gap: int = DEFAULT_GAP) -> None:
    """Serve `create_app(root, gap)` on http://host:port until interrupted (Flask's threaded server).

    Loopback by default: reach it from another machine with SSH port forwarding
    (``ssh -L 8050:127.0.0.1:8050 host``). Another host (e.g. 0.0.0.0) shows the results to anyone who can
    reach that address, without authentication.

    Raises:
        UserError: see `create_app`; a port out of range or already in use, or a host that does not resolve.
    """
    _check_address(host, port)
    app = create_app(root, gap)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: serving {root} on {host}: anyone who can reach it can read the results",
            file=sys.stderr,
        )
    print(f"grokscan serve: http://{host}:{port}/ ({root}); Ctrl-C stops it", file=sys.stderr)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # else one line per poll of every page open
    app.run(host=host, port=port, debug=False)
