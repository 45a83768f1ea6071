"""Figures and reports of a sweep's results, drawn from the frames of `grokscan.results`.

`style` holds the shared colours, rc style and axis helpers; `grids` the cell maps (phase, median
step_gen); `lines` the per-run curves and the scaling fit; `figures` the `phase_diagram` dispatcher; `report`
the self-contained HTML page. Every figure is a `matplotlib.figure.Figure` built without pyplot. Nothing here
may import torch or ray.
"""
