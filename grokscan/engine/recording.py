"""What a sweep records beyond its runs' default curves: opt-in curve metrics (every k-th eval) and weights.

A recording changes nothing a run trains, so it is not part of any RunConfig (a run's id and its results
are the same whatever is recorded): it is a per-sweep setting (the search-space file's `record`) that a
trial sets around `train_runs`::

    with recording(Recording(metrics=("fourier",), every=4)):
        train_runs(configs)

A pack reads it once when it is built (its metric columns) and at each eval (`on_eval`, which
`engine.weights.WeightTap` uses to copy weights out).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from grokscan.errors import UserError
from grokscan.registry import CURVE_METRICS, closest

# on_eval(model, configs, step, flat): the pack's members at one eval, flat parameters [m, P]
OnEval = Callable[..., None]


@dataclass(frozen=True)
class Recording:
    """Opt-in curve metrics by registered name, computed at every `every`-th eval (and at the budget's
    last step); other evals record NaN in their columns. `on_eval` sees every eval's weights."""

    metrics: tuple[str, ...] = ()
    every: int = 1
    on_eval: OnEval | None = None

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise UserError(f"record every = {self.every!r} is invalid: must be an integer >= 1")
        allowed = tuple(m.name for m in CURVE_METRICS if m.opt_in) if self.metrics else ()
        for name in self.metrics:
            if name not in allowed:
                hint = closest(name, allowed)
                raise UserError(f"record metric {name!r} is not an opt-in curve metric{hint}")

    @property
    def per_pack_step(self) -> bool:
        """Whether it follows the pack's step (metrics every k-th eval, weights at listed steps), which runs
        that joined a pack later do not share: such packs are not refilled."""
        return self.every > 1 or self.on_eval is not None

    def due(self, step: int, eval_every: int, steps: int) -> bool:
        """Whether opt-in metrics are computed at the eval of `step` (a multiple of eval_every)."""
        return (step // eval_every) % self.every == 0 or step >= steps


_NOTHING = Recording()
_CURRENT: ContextVar[Recording | None] = ContextVar("grokscan_recording", default=None)


def current() -> Recording:
    """The recording in effect (by default: no opt-in metrics, no weights)."""
    return _CURRENT.get() or _NOTHING


@contextlib.contextmanager
def recording(rec: Recording) -> Iterator[Recording]:
    """Packs built inside this block record `rec`."""
    token = _CURRENT.set(rec)
    try:
        yield rec
    finally:
        _CURRENT.reset(token)
