"""Analysis of a runs table (`grokscan.results.store.load_runs`): phase tables over grid cells and censored
scaling fits.

A run that never generalized has ``step_gen`` null and is right-censored at ``steps_run``: it says "later
than steps_run", not "never" and not "at the budget". Both medians over seeds (Kaplan–Meier) and the
exponential fit of step_gen against a config column (log-normal accelerated failure time) use it that way.
Only runs with status ``ok`` enter any statistic; diverged and errored runs are counted, never fitted.

Imports neither torch nor ray: results can be analysed wherever pandas runs.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import optimize, special

from grokscan.errors import UserError
from grokscan.results.phases import PHASES, phases

_FAILED = ("diverged", "error")
_EPS = 1e-12  # float slack when testing a Kaplan–Meier product for exactly 0.5


def _require(runs: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in runs.columns]
    if missing:
        raise UserError(
            f"{what} needs column(s) {missing} in the runs table (as returned by grokscan.load_runs); "
            f"it has {', '.join(map(str, runs.columns))}"
        )


def _floats(series: pd.Series) -> np.ndarray:
    """Float array with NaN for null (works for pandas Int64 / Float64 / numpy columns)."""
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _km_medians(cell: np.ndarray, time: np.ndarray, event: np.ndarray, n_cells: int) -> np.ndarray:
    """Kaplan–Meier median of `time` per cell code; NaN where the survival curve stays above 0.5.

    S(t) = prod over event times t_j <= t of (1 - d_j / r_j), with r_j the runs whose time is >= t_j
    (a run censored at t_j is still at risk at t_j). The median is the first event time with S <= 0.5;
    where S is exactly 0.5 it is the midpoint to the next event time, so that without censoring it equals
    the ordinary sample median (R's survfit convention).
    """
    out = np.full(n_cells, np.nan)
    keep = np.isfinite(time)
    if not keep.any():
        return out
    df = pd.DataFrame({"cell": cell[keep], "t": time[keep], "d": event[keep].astype(np.int64)})
    g = df.groupby(["cell", "t"], sort=True)["d"].agg(["sum", "size"]).reset_index()
    by_cell = g.groupby("cell")["size"]
    at_risk = by_cell.transform("sum") - by_cell.cumsum() + g["size"]
    g["s"] = (1.0 - g["sum"] / at_risk).groupby(g["cell"]).cumprod()
    ev = g[g["sum"] > 0].copy()
    ev["next_t"] = ev.groupby("cell")["t"].shift(-1)
    first = ev[ev["s"] <= 0.5 + _EPS].groupby("cell").head(1)
    exact = (np.abs(first["s"] - 0.5) <= _EPS) & first["next_t"].notna()
    median = np.where(exact, (first["t"] + first["next_t"]) / 2, first["t"])
    out[first["cell"].to_numpy()] = median
    return out


def phase_table(
    runs: pd.DataFrame, x: str, y: str | None = None, by: Sequence[str] = (), gap: int | None = None
) -> pd.DataFrame:
    """Per grid cell of config column(s) `x` (and `y`, and any further columns `by`), aggregates over seeds
    of the runs in that cell. `gap` (steps) names every run's phase anew (`grokscan.results.phases`);
    None uses the runs' ``phase`` column (named by load_runs).

    Columns, in order (steps are training steps):
        x, [y], [*by]: the cell's config values; sorted by them in that order, null values last.
        n: runs with status ok. n_failed: runs with status diverged or error (not in any statistic below).
        n_generalized, frac_generalized: ok runs with a step_gen, and their share of n.
        budget: max steps_run over the ok runs (Int64).
        median_step_gen: Kaplan–Meier median of step_gen with never-generalized runs right-censored at
            steps_run (see ``_km_medians``); NaN when the curve never drops to 0.5 (over half censored).
        step_gen_over_budget: True in that NaN case, for a cell with ok runs; shown as "> budget".
        median_step_fit: median step_fit over ok runs that fit.
        median_delay: median of step_gen - step_fit over ok runs that reached both.
        median_delay_ratio: median of step_gen / step_fit over those runs (step_fit > 0).
        phase, phase_share: most common phase among ok runs (ties go to the earlier of comprehension,
            grokking, memorization, confusion) and its share of the ok runs with a phase.
        mixed: phase_share < 1, i.e. the seeds of the cell disagree.

    Raises:
        UserError: a column is missing, or `gap` is negative.
    """
    keys = [x, *([] if y is None else [y]), *by]
    needed = [*keys, "status", "step_fit", "step_gen", "steps_run", *(["phase"] if gap is None else [])]
    _require(runs, needed, "phase_table")
    if gap is not None:
        runs = runs.assign(phase=phases(runs, gap))
    grouped = runs.groupby(keys, dropna=False, sort=True)
    codes = grouped.ngroup().to_numpy()
    table = grouped.size().index.to_frame(index=False)
    n_cells = len(table)

    status = runs["status"]
    ok = status.isin(["ok"]).to_numpy()
    failed = status.isin(_FAILED).to_numpy()
    fit = _floats(runs["step_fit"])
    gen = _floats(runs["step_gen"])
    steps_run = _floats(runs["steps_run"])
    reached = ok & np.isfinite(gen)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(codes[mask], minlength=n_cells)

    def median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        mask = mask & np.isfinite(values)
        return pd.Series(values[mask]).groupby(codes[mask]).median().reindex(range(n_cells)).to_numpy()

    n = count(ok)
    table["n"] = n
    table["n_failed"] = count(failed)
    table["n_generalized"] = count(reached)
    with np.errstate(invalid="ignore", divide="ignore"):
        table["frac_generalized"] = table["n_generalized"] / np.where(n > 0, n, np.nan)
    budget = pd.Series(steps_run[ok]).groupby(codes[ok]).max().reindex(range(n_cells))
    table["budget"] = budget.round().astype("Int64").to_numpy()
    km = _km_medians(codes[ok], np.where(reached, gen, steps_run)[ok], reached[ok], n_cells)
    table["median_step_gen"] = km
    table["step_gen_over_budget"] = np.isnan(km) & (n > 0)
    table["median_step_fit"] = median(fit, ok)
    both = reached & np.isfinite(fit)
    table["median_delay"] = median(gen - fit, both)
    with np.errstate(invalid="ignore", divide="ignore"):
        table["median_delay_ratio"] = median(gen / fit, both & (fit > 0))

    named = pd.DataFrame({"cell": codes[ok], "phase": runs["phase"].to_numpy(dtype=object)[ok]}).dropna()
    counts = named.value_counts(["cell", "phase"]).reset_index(name="count")
    counts["rank"] = counts["phase"].map({p: i for i, p in enumerate(PHASES)}).fillna(len(PHASES))
    top = counts.sort_values(["cell", "count", "rank"], ascending=[True, False, True]).drop_duplicates("cell")
    with_phase = np.bincount(named["cell"].to_numpy(dtype=np.int64), minlength=n_cells)
    top_phase = np.full(n_cells, None, dtype=object)
    top_count = np.zeros(n_cells)
    top_phase[top["cell"].to_numpy()] = top["phase"].to_numpy()
    top_count[top["cell"].to_numpy()] = top["count"].to_numpy()
    table["phase"] = top_phase
    with np.errstate(invalid="ignore", divide="ignore"):
        table["phase_share"] = top_count / np.where(with_phase > 0, with_phase, np.nan)
    table["mixed"] = table["phase_share"].to_numpy() < 1
    return table


@dataclass(frozen=True)
class ScalingFit:
    """Fit of log(step_gen) = a - b·x + sigma·eps, eps ~ N(0, 1), with censored runs right-censored.

    Attributes:
        x: The config column fitted against (e.g. "frac").
        a: Intercept, in log(steps). b: decay rate of log(median step_gen) per unit of x.
        sigma: Spread of log(step_gen) around the line (natural-log units).
        a_ci, b_ci: 95% percentile-bootstrap intervals (resampling runs with replacement).
        slowdown_per_minus_0_1: exp(0.1·b), the factor by which median step_gen grows when x drops by 0.1.
        n, n_censored: ok runs in the fit, and how many of them never generalized.
        method: "lognormal-aft" (log-normal accelerated failure time, i.e. a Tobit model on log steps).
        budget: Steps used for ``x_at_budget`` (default: max steps_run of the fitted runs).
        x_at_budget: The x where the fitted median step_gen reaches `budget` (extrapolated if needed).
        boot: The bootstrap's (a, b) per resample, shape [n_boot, 2]; NaN rows for resamples with no
            finite fit. The CIs and `band` both come from it.
        n_boot_failed: How many of those resamples had no finite fit (no generalized run or a single x
            in the resample, or a fit that ran off to sigma -> 0); the CIs and band use the rest. Reported
            here, not as a warning, so that callers say it once, in words.
    """

    x: str
    a: float
    b: float
    sigma: float
    a_ci: tuple[float, float]
    b_ci: tuple[float, float]
    slowdown_per_minus_0_1: float
    n: int
    n_censored: int
    method: str = "lognormal-aft"
    budget: float | None = None
    x_at_budget: float | None = None
    boot: np.ndarray = field(default_factory=lambda: np.empty((0, 2)), repr=False, compare=False)
    n_boot_failed: int = 0

    @property
    def n_boot(self) -> int:
        """Bootstrap resamples drawn (0 when the fit had none)."""
        return len(self.boot)

    def predict(self, x_values: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """Median step_gen (steps) at each x: exp(a - b·x), the median of the log-normal (inf past
        float range)."""
        with np.errstate(over="ignore"):
            return np.exp(self.a - self.b * np.asarray(x_values, dtype=float))

    def x_at(self, steps: float) -> float:
        """The x at which the median step_gen is `steps` (> 0): (a - log(steps)) / b."""
        if not steps > 0:
            raise UserError(f"x_at needs a positive number of steps, got {steps!r}")
        if self.b == 0:
            raise UserError(f"the fitted slope b is 0: median step_gen does not depend on {self.x!r}")
        return (self.a - math.log(steps)) / self.b

    def band(self, x_values: Sequence[float] | np.ndarray) -> np.ndarray | None:
        """Pointwise 95% band of the median step_gen at each x, shape [2, len(x_values)], from the
        bootstrap's (a, b) pairs (a joint band: the a and b intervals alone ignore their correlation).
        None when fewer than max(10, n_boot / 2) resamples have a finite fit."""
        pairs = self.boot[np.isfinite(self.boot).all(axis=1)]
        if len(pairs) < max(10, len(self.boot) // 2):
            return None
        # A resample's wild (a, b) may predict past float range: inf there, not a warning.
        with np.errstate(over="ignore", invalid="ignore"):
            preds = np.exp(pairs[:, :1] - pairs[:, 1:] * np.asarray(x_values, dtype=float)[None, :])
            return np.percentile(preds, [2.5, 97.5], axis=0)


def _sample(runs: pd.DataFrame, x: str, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, log time, generalized) of the ok runs; time is step_gen, or steps_run for a censored run."""
    _require(runs, [x, "status", "step_gen", "steps_run"], what)
    column = runs[x]
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise UserError(f"{what}: column {x!r} has dtype {column.dtype}; it needs a numeric config column")
    ok = runs[runs["status"].isin(["ok"]).to_numpy()]
    xv = _floats(ok[x])
    gen = _floats(ok["step_gen"])
    event = np.isfinite(gen)
    time = np.where(event, gen, _floats(ok["steps_run"]))
    keep = np.isfinite(xv) & np.isfinite(time)
    if (keep & (time <= 0)).any():
        # log(0) is -inf: a run that "generalized" before training says nothing about the rate.
        warnings.warn(f"{what}: ignoring {(keep & (time <= 0)).sum()} run(s) at step 0", stacklevel=3)
    keep &= time > 0
    xv, time, event = xv[keep], time[keep], event[keep]
    if np.unique(xv).size < 2:
        raise UserError(
            f"{what}: column {x!r} has {np.unique(xv).size} distinct value(s) among the {keep.sum()} ok "
            "runs with a value; it needs at least 2 to fit a slope"
        )
    if not event.any():
        raise UserError(
            f"{what}: none of the {len(xv)} ok runs generalized (step_gen is null for all); it needs at "
            f"least one run with a step_gen: train longer or add larger values of {x!r}"
        )
    return xv, np.log(time), event


_LOG_S_LIMIT = 50.0  # |log sigma| past this is a wild line-search step: sigma is clipped there
_Z_LIMIT = 1e100  # |z| past this only comes from wild steps; clipping keeps z² and sums finite
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _neg_loglik(
    theta: np.ndarray, x: np.ndarray, logt: np.ndarray, event: np.ndarray, w: np.ndarray
) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood of the censored log-normal model and its gradient in (a, b, log sigma).

    Generalized runs contribute the normal density of log(step_gen) (the 1/t Jacobian is constant),
    censored runs the survival probability P(log T > log steps_run) = Phi(-z). Everything is computed in
    log space, so no intermediate overflows: log Phi(-z) with ``log_ndtr``, and the inverse Mills ratio
    phi(z) / Phi(-z) = sqrt(2/pi) / erfcx(z/sqrt(2)) (-> z for large z, -> 0 for very negative z; the ratio
    of exp(logpdf - log_ndtr) loses all precision there, both being about -z²/2). BFGS's line search
    evaluates wild points: there the value is finite but huge, or +inf (with a zero gradient) when theta
    itself is not finite, never a warning.
    """
    if not np.isfinite(theta).all():
        return math.inf, np.zeros(3)
    a, b, log_s = (float(v) for v in theta)
    log_s = min(max(log_s, -_LOG_S_LIMIT), _LOG_S_LIMIT)
    s = math.exp(log_s)
    with np.errstate(over="ignore"):  # b·x or the division may overflow to ±inf: the clip bounds it
        z = np.clip((logt - (a - b * x)) / s, -_Z_LIMIT, _Z_LIMIT)
    ll = np.where(event, -log_s - 0.5 * z * z, special.log_ndtr(-z))
    mills = _SQRT_2_OVER_PI / special.erfcx(z / math.sqrt(2.0))  # erfcx = inf (mills = 0) for z << 0
    d_mu = np.where(event, z, mills) / s
    d_log_s = np.where(event, z * z - 1.0, mills * z)
    total = w.sum()
    value = -(w @ ll) / total
    grad = -np.array([w @ d_mu, -(w @ (d_mu * x)), w @ d_log_s]) / total
    if not (math.isfinite(value) and np.isfinite(grad).all()):
        return math.inf, np.zeros(3)
    return float(value), grad


def _mle(x: np.ndarray, logt: np.ndarray, event: np.ndarray, w: np.ndarray, start: np.ndarray) -> np.ndarray:
    res = optimize.minimize(_neg_loglik, start, args=(x, logt, event, w), jac=True, method="BFGS")
    # BFGS often stops on "precision loss" at the optimum; trust it when the gradient is flat.
    if not (res.success or np.abs(res.jac).max() < 1e-4) or not np.isfinite(res.x).all():
        raise RuntimeError(f"log-normal AFT fit did not converge: {res.message}")
    return res.x


def fit_scaling(
    runs: pd.DataFrame, x: str = "frac", budget: float | None = None, n_boot: int = 200, seed: int = 0
) -> ScalingFit:
    """Fit median step_gen = exp(a - b·x) by maximum likelihood, treating censored runs as censored.

    Power et al. (2022) report that steps to generalize grow exponentially as the training fraction
    shrinks. Dropping runs that never generalized biases b down (the slowest runs vanish exactly where x
    is small), and putting the budget in for them biases it too; here a censored run contributes
    P(step_gen > steps_run) instead (log-normal accelerated failure time, a Tobit model on log steps).
    Fit with scipy's BFGS on the analytic gradient. Runs with equal (x, time, censored) are pooled as
    weights, so a million runs of a grid fit as fast as a few hundred, and a bootstrap resample of runs is
    a multinomial draw of those weights. Pass only runs that differ in x (filter the other columns first).

    Args:
        runs: Runs table; only status ok runs are used.
        x: Numeric config column.
        budget: Steps for ``x_at_budget``; default the max steps_run of the fitted runs.
        n_boot: Bootstrap resamples for the 95% intervals and `ScalingFit.band` (0: intervals are NaN and
            there is no band).
        seed: Seed of the bootstrap's random generator.

    Raises:
        UserError: x is missing or not numeric, has fewer than 2 distinct values, or no run generalized.
        RuntimeError: the optimizer did not converge.
    """
    xv, logt, event = _sample(runs, x, "fit_scaling")
    ok = runs["status"].isin(["ok"]).to_numpy()
    pooled = pd.DataFrame({"x": xv, "t": logt, "e": event}).value_counts(sort=False).reset_index()
    px, pt, pe = (pooled[c].to_numpy() for c in ("x", "t", "e"))
    pe = pe.astype(bool)
    w = pooled["count"].to_numpy(dtype=float)

    slope, intercept = np.polyfit(px, pt, 1, w=np.sqrt(w))
    spread = max(float(np.sqrt(np.average((pt - intercept - slope * px) ** 2, weights=w))), 1e-2)
    theta = _mle(px, pt, pe, w, np.array([intercept, -slope, math.log(spread)]))

    rng = np.random.default_rng(seed)
    n = len(xv)
    boot = np.full((n_boot, 2), np.nan)
    for i in range(n_boot):
        wb = rng.multinomial(n, w / n).astype(float)
        # A resample with no generalized run or a single x has no finite maximum: leave it out.
        if wb[pe].sum() > 0 and np.unique(px[wb > 0]).size > 1:
            with contextlib.suppress(RuntimeError):  # e.g. fits separated by censoring diverge
                boot[i] = _mle(px, pt, pe, wb, theta)[:2]
    if n_boot and np.isfinite(boot[:, 0]).any():
        lo, hi = np.nanpercentile(boot, [2.5, 97.5], axis=0)
    else:
        lo = hi = np.full(2, np.nan)

    a, b, log_s = (float(v) for v in theta)
    fit = ScalingFit(
        x=x,
        a=a,
        b=b,
        sigma=math.exp(log_s),
        a_ci=(float(lo[0]), float(hi[0])),
        b_ci=(float(lo[1]), float(hi[1])),
        slowdown_per_minus_0_1=math.exp(0.1 * b),
        n=n,
        n_censored=int((~event).sum()),
        budget=float(budget) if budget is not None else float(np.nanmax(_floats(runs["steps_run"])[ok])),
        boot=boot,
        n_boot_failed=n_boot - int(np.isfinite(boot[:, 0]).sum()),
    )
    boot.setflags(write=False)  # shared by the fit and its copies
    return replace(fit, x_at_budget=fit.x_at(fit.budget) if b != 0 else math.nan)


def naive_fit(runs: pd.DataFrame, x: str = "frac") -> tuple[float, float]:
    """(a, b) of least squares log(step_gen) = a - b·x over generalized ok runs only, censored runs dropped.

    Biased (b too small when the slow runs at small x are censored); kept to show how much ``fit_scaling``
    corrects.
    """
    xv, logt, event = _sample(runs, x, "naive_fit")
    if np.unique(xv[event]).size < 2:
        raise UserError(f"naive_fit: the generalized runs have fewer than 2 distinct values of {x!r}")
    slope, intercept = np.polyfit(xv[event], logt[event], 1)
    return float(intercept), float(-slope)
