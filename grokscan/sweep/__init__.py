"""Sweeps: search-space files, adaptive search and the Ray Tune runner (the only part of grokscan that
imports ray; this package's `__init__` does not).

Data flow, one direction:

- `space` loads and validates a search-space file into a `Sweep` (its values: `domains`; adaptive files:
  `adaptive_space`, whose search algorithms live in `adaptive`), before any Ray work; `preflight` checks
  the storage, the Ray address and the size.
- `pack_plan` sizes and cuts a grid's runs into packs (one trial each), for `grokscan run` and its dry run.
- `runner.run_sweep` trains a sweep on Ray Tune (grids itself, adaptive sweeps through `search_runner`),
  with the pieces both runners share: `ray_env` (Ray's switches, set before ray loads, and `init_ray`),
  `trials` (what a trial trains), `store_callback` (the driver writing finished runs to the store) and
  `tuner` (one Tune experiment).

Nothing but `ray_env` imports ray directly: the other Ray modules take `ray` and `tune` from it, so Ray's
process-wide switches are always set first.
"""
