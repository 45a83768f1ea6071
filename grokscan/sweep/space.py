"""Search-space files: import, validate and expand a file into a `Sweep` of RunConfigs.

A search-space file is a plain Python module in Ray Tune's vocabulary::

    from ray import tune
    param_space = {"task": "x+y", "frac": tune.grid_search([0.3, 0.5]), "seed": tune.grid_search([0, 1])}

Optional module-level settings: `name` (the sweep name; default: the file's stem), `pack_size` (runs per
trial), `resources` ({"cpu": 1, "gpu": 0} per trial), `max_concurrent` (trials at once) and `record` (what
runs record beyond the default curves: `grokscan.sweep.record`); for an adaptive
sweep, `search_alg` with `num_samples`, `metric` and `mode` (see `grokscan.sweep.adaptive`). Everything is
validated before any Ray work starts; every problem raises UserError naming the file, the key and what is
allowed. The file is imported as its own module (it runs with the user's rights, like any script).
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from grokscan.config import FIELD_NAMES, RunConfig
from grokscan.errors import UserError
from grokscan.registry import closest
from grokscan.sweep.adaptive import Search
from grokscan.sweep.adaptive_space import adaptive_search
from grokscan.sweep.domains import axis_values, parse_override, positive_int
from grokscan.sweep.record import check_record, parse_record

SETTINGS = ("param_space", "name", "pack_size", "resources", "max_concurrent", "record")
SEARCH_SETTINGS = ("search_alg", "num_samples", "metric", "mode")
RESOURCE_KEYS = ("cpu", "gpu")
GPUS_ALLOWED = (
    "a trial trains on one GPU; allowed: 0 (CPU) to 1, a fraction shares one (0.25: 4 trials per GPU)"
)
SWEEP_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Sweep:
    """A validated, expanded search space."""

    name: str
    path: Path
    configs: list[RunConfig]  # every run of a grid sweep; empty for an adaptive one
    axes: dict[str, list[Any]]  # grid axes in file order: key -> values
    pack_size: int | None = None
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0, "gpu": 0.0})
    max_concurrent: int | None = None
    search: Search | None = None  # adaptive sweeps: the search algorithm and its space
    record: dict[str, Any] = field(default_factory=dict)  # `grokscan.sweep.record`; {}: default curves

    @property
    def max_runs(self) -> int:
        """Runs the sweep trains at most: the grid, num_samples, or a CriticalFraction's worst case."""
        if self.search is None:
            return len(self.configs)
        return self.search.alg.max_runs if self.search.critical else self.search.num_samples


def _import(path: Path) -> ModuleType:
    if not path.is_file():
        raise UserError(f"{path}: no such search-space file")
    if path.suffix != ".py":
        raise UserError(f"{path}: a search-space file is a Python module ending in .py")
    # The file's `from ray import tune` is usually the process's first ray import, which fixes Ray's
    # process-wide switches (an embedded Ray on loopback only): set them first.
    import grokscan.sweep.ray_env  # noqa: F401

    module_name = f"grokscan_space_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise UserError(f"{path}:{err.lineno}: syntax error: {err.msg}") from err
    except Exception as err:
        raise UserError(f"{path}: importing the file failed: {type(err).__name__}: {err}") from err
    finally:
        sys.modules.pop(module_name, None)
    return module


def _settings(path: Path, module: ModuleType) -> dict[str, Any]:
    found = {}
    for key, value in vars(module).items():
        if key.startswith("_") or inspect.ismodule(value) or callable(value):
            continue
        if key not in SETTINGS + SEARCH_SETTINGS:
            raise UserError(f"{path}: unknown setting {key!r}{closest(key, SETTINGS + SEARCH_SETTINGS)}")
        found[key] = value
    if "param_space" not in found:
        raise UserError(
            f"{path}: no `param_space` dict; define param_space = {{'frac': tune.grid_search([...]), ...}}"
        )
    return found


def load_space(path: str | Path, overrides: Sequence[str] = ()) -> Sweep:
    """Import, validate and expand a search-space file. `overrides` are `key=value` strings (--set)."""
    path = Path(path)
    settings = _settings(path, _import(path))
    space = settings["param_space"]
    if not isinstance(space, dict) or not space:
        raise UserError(f"{path}: param_space must be a non-empty dict of RunConfig fields")
    space = dict(space)
    for text in overrides:
        key, value = parse_override(text)
        space[key] = value
    for key in space:
        if key not in FIELD_NAMES:
            raise UserError(f"{path}: param_space has unknown key {key!r}{closest(key, FIELD_NAMES)}")
    name = settings.get("name", path.stem)
    if not isinstance(name, str) or not SWEEP_NAME.match(name):
        raise UserError(f"{path}: name = {name!r}: use letters, digits, '_', '.', '-'")
    common = dict(
        name=name,
        path=path,
        pack_size=positive_int(path, "pack_size", settings.get("pack_size")),
        resources=_resources(path, settings.get("resources")),
        max_concurrent=positive_int(path, "max_concurrent", settings.get("max_concurrent")),
        record=parse_record(path, settings.get("record")),
    )
    if "search_alg" in settings:
        search, axes = adaptive_search(path, settings, space)
        return Sweep(configs=[], axes=axes, search=search, **common)
    if set(settings) & set(SEARCH_SETTINGS):
        key = sorted(set(settings) & set(SEARCH_SETTINGS))[0]
        raise UserError(f"{path}: {key} is a setting of adaptive sweeps; it needs a search_alg")
    axes = {key: axis_values(path, key, value) for key, value in space.items()}
    configs, seen = [], set()
    for values in itertools.product(*axes.values()):
        try:
            cfg = RunConfig.from_dict(dict(zip(axes, values, strict=True)))
        except UserError as err:
            raise UserError(f"{path}: {err}") from None
        if cfg.run_id not in seen:  # fields that do not apply collapse grid points into one run
            seen.add(cfg.run_id)
            configs.append(cfg)
    check_record(path, common["record"], configs)
    return Sweep(configs=configs, axes={k: v for k, v in axes.items() if len(v) > 1}, **common)


def _resources(path: Path, value: Any) -> dict[str, float]:
    resources = {"cpu": 1.0, "gpu": 0.0}
    if value is None:
        return resources
    if not isinstance(value, dict):
        raise UserError(f"{path}: resources = {value!r}: must be a dict like {{'cpu': 1, 'gpu': 0.25}}")
    for key, amount in value.items():
        if key not in RESOURCE_KEYS:
            raise UserError(f"{path}: resources has unknown key {key!r}{closest(key, RESOURCE_KEYS)}")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise UserError(f"{path}: resources[{key!r}] = {amount!r}: must be a number >= 0")
        if key == "gpu" and amount > 1:
            raise UserError(f"{path}: resources['gpu'] = {amount!r}: {GPUS_ALLOWED}")
        resources[key] = float(amount)
    return resources
