"""RunResult: what one run produced, and the phase it falls in (Liu et al. 2022)."""

from __future__ import annotations

from dataclasses import dataclass, field

from grokscan.config import RunConfig

PHASES = ("comprehension", "grokking", "memorization", "confusion")
CURVE_METRICS = ("train_acc", "val_acc", "train_loss", "val_loss", "weight_norm", "zero_loss_frac")


def phase(step_fit: int | None, step_gen: int | None, gap: int) -> str:
    """comprehension: fit and generalized within `gap` steps of fitting (or before); grokking: generalized
    more than `gap` steps after fitting; memorization: fit only; confusion: neither (within the budget)."""
    if step_fit is None:
        return "comprehension" if step_gen is not None else "confusion"
    if step_gen is None:
        return "memorization"
    return "comprehension" if step_gen - step_fit <= gap else "grokking"


@dataclass
class RunResult:
    """Outcome of one run. step_gen is None (and censored True) when validation accuracy never reached the
    threshold within steps_run; no placeholder number stands in for "never". Status is "ok" or "diverged"
    (non-finite loss or parameters; `error` says which and when). wall_s is the run's share of its pack's
    wall time (each eval interval's time split evenly among the members still training)."""

    config: RunConfig
    status: str
    step_fit: int | None
    step_gen: int | None
    steps_run: int
    final: dict[str, float]
    wall_s: float
    device: str
    pack_size: int
    error: str | None = None
    curves: dict[str, list[float]] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.config.run_id

    @property
    def censored(self) -> bool:
        return self.step_gen is None

    @property
    def phase(self) -> str | None:
        """The Liu et al. phase; None for a diverged run (its steps say nothing about generalization)."""
        return phase(self.step_fit, self.step_gen, self.config.gap) if self.status == "ok" else None


def result_to_dict(result: RunResult) -> dict:
    """Plain, JSON-able form (for shipping results between processes)."""
    out = {k: getattr(result, k) for k in RunResult.__dataclass_fields__ if k != "config"}
    return {**out, "config": result.config.to_dict()}


def result_from_dict(data: dict) -> RunResult:
    return RunResult(**{**data, "config": RunConfig(**data["config"])})
