"""RunResult: what one run produced (torch-free, so results can be stored and analysed anywhere)."""

from __future__ import annotations

from dataclasses import dataclass, field

from grokscan.config import RunConfig


@dataclass
class RunResult:
    """Outcome of one run. step_gen is None (and censored True) when validation accuracy never reached the
    threshold within steps_run; no placeholder number stands in for "never". Status is "ok" or "diverged"
    (non-finite loss or parameters; `error` says which and when). wall_s is the run's share of its pack's
    wall time (each eval interval's time split evenly among the members still training). `final` maps each
    curve column (the registered curve metrics that apply to the run) to its last value; `curves` maps
    "step" and those columns to equal-length lists. The phase is named at analysis time
    (`grokscan.results.phases`)."""

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


def result_to_dict(result: RunResult) -> dict:
    """Plain, JSON-able form (for shipping results between processes)."""
    out = {k: getattr(result, k) for k in RunResult.__dataclass_fields__ if k != "config"}
    return {**out, "config": result.config.to_dict()}


def result_from_dict(data: dict) -> RunResult:
    return RunResult(**{**data, "config": RunConfig(**data["config"])})
