"""Registries: the one place that knows the registered tasks, models, optimizers, losses, gradient filters,
activations, tickets and curve metrics by name (in the spirit of timm's `register_model` / `create_model` and
Gymnasium's `register` / `make`).

An entry is one object in one file; it registers itself when its module is imported::

    from grokscan.registry import TASKS
    TASKS.register(MyTask("my_task"))

The built-in entries are imported on the first lookup, so importing this module (and `grokscan.config`)
loads no torch. An unknown name is a `UserError` listing the registered names and the closest match.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from grokscan.errors import UserError

T = TypeVar("T")

# Modules whose import registers the built-in entries (each imports torch).
_BUILTINS = (
    "grokscan.tasks",
    "grokscan.engine.models",
    "grokscan.engine.activations",
    "grokscan.engine.optim",
    "grokscan.engine.filters",
    "grokscan.engine.losses",
    "grokscan.engine.metrics",
    "grokscan.engine.progress",
    "grokscan.engine.tickets",
)
_loaded = False


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTINS:
            importlib.import_module(module)


def closest(value: Any, allowed: tuple[str, ...] | list[str]) -> str:
    """'; did you mean X?' for the closest allowed name, else the list of allowed names."""
    match = difflib.get_close_matches(str(value), list(allowed), n=1)
    return f"; did you mean {match[0]!r}?" if match else f"; allowed: {', '.join(allowed)}"


class Registry(Generic[T]):
    """Named entries of one kind. `field` is the RunConfig field that names the entry (None: the entries
    all apply, like curve metrics)."""

    def __init__(self, kind: str, field: str | None) -> None:
        self.kind, self.field = kind, field
        self._entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        """Add `entry` under `entry.name`; a second entry of the same name is an error (a bug, not input)."""
        name = entry.name
        if name in self._entries and self._entries[name] is not entry:
            raise RuntimeError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove an entry (tests that register a toy entry clean up with this)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        _load_builtins()
        if name not in self._entries:
            raise UserError(f"unknown {self.kind} {name!r}{closest(name, self.names())}")
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        _load_builtins()
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        _load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        _load_builtins()
        return iter(list(self._entries.values()))

    def owned_fields(self) -> set[str]:
        """Config fields that some entry of this kind reads: they are None for runs of the other entries."""
        return {f for entry in self for f in getattr(entry, "fields", ())}


TASKS: Registry = Registry("task", "task")
MODELS: Registry = Registry("model", "model")
ACTIVATIONS: Registry = Registry("activation", "activation")
OPTIMIZERS: Registry = Registry("optimizer", "optimizer")
GRAD_FILTERS: Registry = Registry("grad_filter", "grad_filter")
LOSSES: Registry = Registry("loss", "loss")
TICKETS: Registry = Registry("ticket", "ticket")
CURVE_METRICS: Registry = Registry("curve metric", None)
BY_FIELD = {r.field: r for r in (TASKS, MODELS, ACTIVATIONS, OPTIMIZERS, GRAD_FILTERS, LOSSES, TICKETS)}


class Entry:
    """Base of a registry entry: its name, the config fields it reads, their validation and defaults.

    Subclasses override `validate` (raise with `cfg_error`) and `normalize` (resolved defaults)."""

    name: str = ""
    fields: tuple[str, ...] = ()

    def validate(self, cfg: Any) -> None:
        """Raise UserError (via `cfg_error`) for values of this entry's fields it cannot run."""

    def normalize(self, cfg: Any) -> dict[str, Any]:
        """Canonical values of this entry's fields (e.g. a default resolved from another field)."""
        return {}


def cfg_error(name: str, value: Any, allowed: str) -> UserError:
    """The error for one invalid RunConfig value: names the field, the value and what is allowed."""
    return UserError(f"RunConfig field {name!r} = {value!r} is invalid: {allowed}")
