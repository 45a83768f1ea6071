"""The values of a search-space file: fixed values, grids, sampled Ray Tune domains and `--set` overrides.

Shared by the grid loader (`space`) and the adaptive one (`adaptive_space`); no ray import (a domain is
recognised by its interface).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from grokscan.errors import UserError


def is_domain(value: Any) -> bool:
    """Whether `value` is a sampled Ray Tune domain (tune.uniform, tune.choice, ...)."""
    return hasattr(value, "sample") and hasattr(value, "domain_str")


def axis_values(path: Path, key: str, value: Any) -> list[Any]:
    """The values a key takes: a grid_search list, or the single fixed value."""
    if isinstance(value, dict) and set(value) == {"grid_search"}:
        values = list(value["grid_search"])
        if not values:
            raise UserError(f"{path}: param_space[{key!r}] is an empty grid; give at least one value")
        return values
    if is_domain(value):
        raise UserError(
            f"{path}: param_space[{key!r}] is a sampled domain ({type(value).__name__}); a grid sweep "
            "expands tune.grid_search([...]); sampling needs a search_alg (e.g. OptunaSearch) and num_samples"
        )
    if isinstance(value, (list, dict, set, tuple)):
        raise UserError(
            f"{path}: param_space[{key!r}] = {value!r}: use tune.grid_search([...]) for several values"
        )
    return [value]


def positive_int(path: Path, key: str, value: Any) -> int | None:
    """`value` if it is None or an integer >= 1 (a setting such as pack_size or num_samples)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UserError(f"{path}: {key} = {value!r}: must be a positive integer")
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` from the command line; value read as a Python literal (a list means a grid)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {text!r}: expected key=value, e.g. --set steps=20000")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw.strip()  # a bare word such as --set loss=stablemax
    if isinstance(value, list):
        value = {"grid_search": value}
    return key.strip(), value
