"""Validation of adaptive search-space files (`search_alg = ...`, see `grokscan.sweep.adaptive`) before any
Ray work.

Every sampled domain is checked at its ends (each category of a `tune.choice`) against RunConfig, every
grid value too, so that no proposal a searcher can make fails validation after the sweep has started.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from grokscan.config import SEED_FIELDS, RunConfig
from grokscan.errors import UserError
from grokscan.sweep.adaptive import METRICS, CriticalFraction, Search
from grokscan.sweep.domains import axis_values, is_domain, positive_int


def _ends(path: Path, key: str, domain: Any) -> list[Any]:
    """The values that bound a domain: its categories, or its lower and upper ends (randint: exclusive)."""
    if hasattr(domain, "categories"):
        values = list(domain.categories)
        if any(isinstance(v, (list, dict, tuple, set)) or is_domain(v) for v in values):
            raise UserError(f"{path}: param_space[{key!r}]: tune.choice takes plain values, got {values!r}")
        return values
    lower, upper = getattr(domain, "lower", None), getattr(domain, "upper", None)
    if lower is None or upper is None:
        raise UserError(f"{path}: param_space[{key!r}] = {domain!r}: use a bounded domain (uniform, choice)")
    return [lower, upper - 1 if type(domain).__name__ == "Integer" else upper]


def _check(path: Path, point: dict[str, Any]) -> None:
    try:
        RunConfig.from_dict(point)
    except UserError as err:
        raise UserError(f"{path}: {err}") from None


def adaptive_search(path: Path, settings: dict[str, Any], space: dict[str, Any]) -> tuple[Search, dict]:
    """The validated Search of a space file with a search_alg, and its grid axes (CriticalFraction only)."""
    alg = settings["search_alg"]
    domains = {k: v for k, v in space.items() if is_domain(v)}
    grid = {k: axis_values(path, k, v) for k, v in space.items() if not is_domain(v)}
    fixed = {k: v[0] for k, v in grid.items() if len(v) == 1}
    grid = {k: v for k, v in grid.items() if len(v) > 1}
    ends = {k: _ends(path, k, d) for k, d in domains.items()}
    base = {**fixed, **{k: v[0] for k, v in grid.items()}, **{k: v[0] for k, v in ends.items()}}
    for key, values in {**grid, **ends}.items():
        for value in values:
            _check(path, {**base, key: value})
    if isinstance(alg, CriticalFraction):
        return _critical(path, settings, alg, fixed, domains, grid), grid
    if not (hasattr(alg, "suggest") and hasattr(alg, "set_search_properties")):
        raise UserError(
            f"{path}: search_alg = {alg!r}: expected a Ray Tune searcher (e.g. OptunaSearch()) or "
            "grokscan.sweep.adaptive.CriticalFraction(...)"
        )
    if grid:
        key = next(iter(grid))
        raise UserError(
            f"{path}: param_space[{key!r}] is a tune.grid_search, which {type(alg).__name__} cannot sample "
            "(Optuna cannot convert grid_search): use tune.choice([...]) or drop the search_alg"
        )
    if not domains:
        raise UserError(f"{path}: search_alg needs sampled domains in param_space, e.g. tune.uniform(0, 1)")
    num_samples = positive_int(path, "num_samples", settings.get("num_samples"))
    if num_samples is None:
        raise UserError(f"{path}: a search_alg needs num_samples = N (runs to train in all)")
    metric = settings.get("metric", "step_gen")
    if metric not in METRICS:
        raise UserError(f"{path}: metric = {metric!r}: allowed: {', '.join(METRICS)}")
    mode = settings.get("mode", METRICS[metric])
    if mode not in ("min", "max"):
        raise UserError(f"{path}: mode = {mode!r}: allowed: 'min', 'max'")
    return Search(alg, fixed, domains, num_samples=num_samples, metric=metric, mode=mode), {}


def _critical(
    path: Path, settings: dict, alg: CriticalFraction, fixed: dict, domains: dict, grid: dict
) -> Search:
    for key in ("num_samples", "metric", "mode"):
        if key in settings:
            raise UserError(f"{path}: {key} is not a CriticalFraction setting (it stops when all cells are)")
    domain = domains.get(alg.key)
    if set(domains) != {alg.key} or not hasattr(domain, "lower") or hasattr(domain, "categories"):
        raise UserError(
            f"{path}: CriticalFraction bisects param_space[{alg.key!r}] = tune.uniform(lo, hi); every other "
            f"key is fixed or a tune.grid_search (sampled now: {', '.join(domains) or 'none'})"
        )
    axes = [k for k in grid if k not in SEED_FIELDS]
    cells = [dict(zip(axes, v, strict=True)) for v in itertools.product(*(grid[k] for k in axes))]
    seed_axes = [k for k in grid if k in SEED_FIELDS]
    seeds = [dict(zip(seed_axes, v, strict=True)) for v in itertools.product(*(grid[k] for k in seed_axes))]
    alg.bind(fixed, float(domain.lower), float(domain.upper), cells, seeds)
    return Search(alg, fixed, domains, grid=grid)
