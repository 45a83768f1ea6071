"""Figures and reports of a sweep's results, drawn from the frames of `grokscan.results`.

`style` holds the shared colours, rc style and axis helpers; `grids` the cell maps (phase, median
step_gen); `lines` the per-run curves and the scaling fit; `figures` the `phase_diagram` dispatcher; `report`
the self-contained HTML page. Every figure is a `matplotlib.figure.Figure` built without pyplot, except those
of `serve`, the live read-only Dash page of a results directory (`grokscan serve`): `serve` holds the page and
its server, `serve_cache` the results cache, `serve_maps` the plotly grid maps and `serve_figures` the other
plotly figures. Nothing here may import torch or ray.
"""
