"""RunConfig: everything that determines one training run, as flat fields (= Parquet columns).

Defaults and their sources:
- task x+y, p=97, frac=0.5: Power et al. 2022 ("Grokking: generalization beyond overfitting").
- AdamW lr=1e-3, betas (0.9, 0.98), weight_decay=1.0, full batch, 10-step linear warmup: Nanda et al. 2023
  ("Progress measures for grokking via mechanistic interpretability"); Power et al. also warm up for 10 steps.
- transformer: 1 layer, d_model (width) 128, 4 heads, d_mlp 512 (Nanda et al.); depth=2 gives Power et al.'s
  2-layer, d_model 128, 4-head size.
- alpha=1 (standard init); Liu et al. 2022 "Omnigrok" scale every parameter by alpha.
- Grokfast EMA alpha=0.98, lambda=2.0: Lee et al. 2024.
- threshold 0.99 for step_fit/step_gen; gap=1000 steps between fit and generalization separates grokking
  from comprehension (Liu et al. 2022, "Towards understanding grokking: an effective theory").
- mlp width 64, depth 1 and the 4000-step budget are grokscan's own choice: small enough that one run takes
  under a minute on one laptop CPU core, while weight_decay=1 groks and weight_decay=0 memorizes within the
  budget (measured: see README).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from dataclasses import dataclass, fields
from typing import Any

MOD_OPS = (
    "x+y",
    "x-y",
    "x*y",
    "x/y",
    "x^2+y^2",
    "x^2+xy+y^2",
    "x^2+xy+y^2+x",
    "x^3+xy",
    "x^3+xy^2+y",
    "mix",
)
# Ops whose rows with y = 0 are excluded (division by y); they need a prime p.
DIVISION_OPS = ("x/y", "mix")
PERM_TASK = re.compile(r"^s([3-6])(conj|aba)?$")
PERM_TASKS = tuple(f"s{n}{v}" for n in range(3, 7) for v in ("", "conj", "aba"))
TASKS = (*MOD_OPS, *PERM_TASKS, "parity", "digits", "mnist")
MODELS = ("mlp", "transformer")
ACTIVATIONS = ("relu", "gelu", "tanh", "quadratic")
OPTIMIZERS = ("adamw", "adam", "sgd")
LOSSES = ("ce", "stablemax", "mse")
GRAD_FILTERS = ("none", "perp", "grokfast")
DTYPES = ("float32", "float64")
MNIST_ROWS = 70000
DIGITS_ROWS = 1797
MAX_PARITY_TABLE_BITS = 20
DEFAULT_WIDTH = {"mlp": 64, "transformer": 128}


@dataclass(frozen=True)
class RunConfig:
    """One run. Fields that do not apply to the chosen task/model/optimizer are normalized to None."""

    task: str = "x+y"
    p: int | None = 97
    n_bits: int | None = 40
    k_bits: int | None = 3
    n_samples: int | None = 2000
    frac: float = 0.5
    seed: int = 0
    split_seed: int | None = None
    label_noise: float = 0.0
    model: str = "mlp"
    width: int | None = None  # None: 64 for the mlp, 128 (d_model) for the transformer
    depth: int = 1
    heads: int | None = 4
    d_mlp: int | None = None
    activation: str = "relu"
    alpha: float = 1.0
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1.0
    beta1: float | None = 0.9
    beta2: float | None = 0.98
    eps: float | None = 1e-8
    momentum: float | None = 0.0
    warmup: int = 10
    batch_size: int | None = None
    loss: str = "ce"
    grad_filter: str = "none"
    grokfast_alpha: float | None = 0.98
    grokfast_lamb: float | None = 2.0
    dtype: str = "float32"
    steps: int = 4000
    eval_every: int = 50
    threshold: float = 0.99
    patience: int = 3
    gap: int = 1000

    def __post_init__(self) -> None:
        if self.width is None:
            object.__setattr__(self, "width", DEFAULT_WIDTH.get(self.model, 64))
        _validate(self)
        for name, value in _normalized(self).items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build from a plain dict, rejecting unknown keys with the closest valid name."""
        for key in values:
            if key not in FIELD_NAMES:
                raise ValueError(f"unknown RunConfig field {key!r}{_closest(key, FIELD_NAMES)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def run_id(self) -> str:
        """Stable 16-hex-digit hash of every field (each can change the result; irrelevant ones are None)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def n_rows(self) -> int:
        """Rows in the task's full table."""
        return table_rows(self)

    @property
    def n_train(self) -> int:
        """Training rows: round(frac * n_rows) (Python rounding, as in the split)."""
        return round(self.frac * self.n_rows)


FIELD_NAMES = tuple(f.name for f in fields(RunConfig))
FIELD_TYPES = {f.name: f.type for f in fields(RunConfig)}


def table_rows(cfg: RunConfig) -> int:
    if cfg.task in MOD_OPS:
        return cfg.p * (cfg.p - 1 if cfg.task in DIVISION_OPS else cfg.p)
    if cfg.task in PERM_TASKS:
        return math.factorial(int(PERM_TASK.match(cfg.task).group(1))) ** 2
    if cfg.task == "parity":
        return 2**cfg.n_bits if cfg.n_samples is None else cfg.n_samples
    return DIGITS_ROWS if cfg.task == "digits" else MNIST_ROWS


def _closest(value: str, allowed: tuple[str, ...]) -> str:
    match = difflib.get_close_matches(str(value), allowed, n=1)
    return f"; did you mean {match[0]!r}?" if match else f"; allowed: {', '.join(allowed)}"


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ValueError(f"RunConfig field {name!r} = {value!r} is invalid: {allowed}")


def _check_types(cfg: RunConfig) -> None:
    for name in FIELD_NAMES:
        value, kind = getattr(cfg, name), FIELD_TYPES[name]
        if value is None:
            if "None" not in kind:
                _fail(name, value, "a value is required")
        elif kind.startswith("int"):
            if isinstance(value, bool) or not isinstance(value, int):
                _fail(name, value, "must be an integer")
        elif kind.startswith("float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                _fail(name, value, "must be a finite number")
        elif not isinstance(value, str):
            _fail(name, value, "must be a string")


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


def _validate(cfg: RunConfig) -> None:
    _check_types(cfg)
    choices = {
        "task": TASKS,
        "model": MODELS,
        "activation": ACTIVATIONS,
        "optimizer": OPTIMIZERS,
        "loss": LOSSES,
        "grad_filter": GRAD_FILTERS,
        "dtype": DTYPES,
    }
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            _fail(name, getattr(cfg, name), f"not a known {name}{_closest(getattr(cfg, name), allowed)}")
    if cfg.task in MOD_OPS:
        if cfg.p is None or not 2 <= cfg.p <= 2000:
            _fail("p", cfg.p, f"task {cfg.task!r} needs a modulus 2 <= p <= 2000")
        if cfg.task in DIVISION_OPS and not _is_prime(cfg.p):
            _fail("p", cfg.p, f"task {cfg.task!r} divides by y, so p must be prime (e.g. 97 or 113)")
    if cfg.task == "parity":
        if cfg.n_bits is None or not 1 <= cfg.n_bits <= 62:
            _fail("n_bits", cfg.n_bits, "parity needs 1 <= n_bits <= 62")
        if cfg.k_bits is None or not 1 <= cfg.k_bits <= cfg.n_bits:
            _fail("k_bits", cfg.k_bits, f"parity needs 1 <= k_bits <= n_bits ({cfg.n_bits})")
        if cfg.n_samples is None and cfg.n_bits > MAX_PARITY_TABLE_BITS:
            _fail("n_samples", None, f"a full parity table needs n_bits <= {MAX_PARITY_TABLE_BITS}")
        if cfg.n_samples is not None and not 2 <= cfg.n_samples <= min(2**cfg.n_bits, 10**6):
            _fail(
                "n_samples",
                cfg.n_samples,
                f"must be in [2, min(2**n_bits, 1e6)] = {min(2**cfg.n_bits, 10**6)}",
            )
    if cfg.model == "transformer" and cfg.task in ("digits", "mnist"):
        _fail("model", cfg.model, f"task {cfg.task!r} has pixel inputs; use model='mlp'")
    if not 0 < cfg.frac < 1:
        _fail("frac", cfg.frac, "must be strictly between 0 and 1")
    n_rows = table_rows(cfg)
    n_train = round(cfg.frac * n_rows)
    if not 1 <= n_train <= n_rows - 1:
        _fail("frac", cfg.frac, f"gives {n_train} of {n_rows} rows for training; need >= 1 on each side")
    positive_ints = ("width", "depth", "steps", "eval_every", "patience")
    for name in positive_ints:
        if getattr(cfg, name) < 1:
            _fail(name, getattr(cfg, name), "must be >= 1")
    if cfg.model == "transformer" and cfg.depth > 2:
        _fail("depth", cfg.depth, "the transformer has 1 or 2 layers")
    if cfg.model == "transformer" and (cfg.heads is None or cfg.heads < 1 or cfg.width % cfg.heads):
        _fail("heads", cfg.heads, f"must be >= 1 and divide width ({cfg.width})")
    if cfg.d_mlp is not None and cfg.d_mlp < 1:
        _fail("d_mlp", cfg.d_mlp, "must be >= 1 (or None for 4 * width)")
    if cfg.steps % cfg.eval_every:
        _fail("steps", cfg.steps, f"must be a multiple of eval_every ({cfg.eval_every})")
    if cfg.batch_size is not None and not 1 <= cfg.batch_size <= n_train:
        _fail(
            "batch_size", cfg.batch_size, f"must be in [1, {n_train}] (training rows) or None for full batch"
        )
    for name in ("seed", "warmup", "gap"):
        if getattr(cfg, name) < 0:
            _fail(name, getattr(cfg, name), "must be >= 0")
    if cfg.split_seed is not None and cfg.split_seed < 0:
        _fail("split_seed", cfg.split_seed, "must be >= 0 (or None to use seed)")
    if not 0 <= cfg.label_noise < 1:
        _fail("label_noise", cfg.label_noise, "must be in [0, 1)")
    if cfg.alpha <= 0 or cfg.lr <= 0:
        _fail("alpha" if cfg.alpha <= 0 else "lr", min(cfg.alpha, cfg.lr), "must be > 0")
    if cfg.weight_decay < 0:
        _fail("weight_decay", cfg.weight_decay, "must be >= 0")
    for name in ("beta1", "beta2", "momentum", "grokfast_alpha"):
        value = getattr(cfg, name)
        if value is not None and not 0 <= value < 1:
            _fail(name, value, "must be in [0, 1)")
    if cfg.eps is not None and cfg.eps <= 0:
        _fail("eps", cfg.eps, "must be > 0")
    if not 0 < cfg.threshold <= 1:
        _fail("threshold", cfg.threshold, "must be in (0, 1]")


def _normalized(cfg: RunConfig) -> dict[str, Any]:
    """Canonical values: split_seed and d_mlp resolved, fields that cannot affect this run set to None."""
    out: dict[str, Any] = {
        "split_seed": cfg.seed if cfg.split_seed is None else cfg.split_seed,
        "frac": float(cfg.frac),
    }
    for name in FIELD_NAMES:
        if FIELD_TYPES[name].startswith("float") and getattr(cfg, name) is not None:
            out.setdefault(name, float(getattr(cfg, name)))
    if cfg.task not in MOD_OPS:
        out["p"] = None
    if cfg.task != "parity":
        out.update(n_bits=None, k_bits=None, n_samples=None)
    if cfg.model == "mlp":
        out.update(heads=None, d_mlp=None)
    elif cfg.d_mlp is None:
        out["d_mlp"] = 4 * cfg.width
    if cfg.optimizer == "sgd":
        out.update(beta1=None, beta2=None, eps=None)
    else:
        out["momentum"] = None
    if cfg.grad_filter != "grokfast":
        out.update(grokfast_alpha=None, grokfast_lamb=None)
    return out
