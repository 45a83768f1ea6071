"""RunConfig: everything that determines one training run, as flat fields (= Parquet columns).

Which fields apply to a run, their validation and their resolved defaults belong to the registry entries
the run names (its task, model, activation, optimizer, grad_filter, loss; `grokscan.registry`); this module
checks types and the fields every run has, and computes the run's identity.

Defaults and their sources:
- task x+y, p=97, frac=0.5: Power et al. 2022 ("Grokking: generalization beyond overfitting").
- AdamW lr=1e-3, betas (0.9, 0.98), weight_decay=1.0, full batch, 10-step linear warmup: Nanda et al. 2023
  ("Progress measures for grokking via mechanistic interpretability"); Power et al. also warm up for 10 steps.
- transformer: 1 layer, d_model (width) 128, 4 heads, d_mlp 512, no LayerNorm (Nanda et al.); Power et al.'s
  is depth=2 with layernorm="post", biases="off", pos_encoding="sinusoidal", input_format="eos_x_op_y"
  (sources in engine/models/transformer.py).
- alpha=1 (standard init); Liu et al. 2022 "Omnigrok" scale every parameter by alpha.
- Grokfast EMA alpha=0.98, lambda=2.0; Grokfast-MA window 100, lambda 5.0, mean: Lee et al. 2024.
- matmul_precision None: IEEE float32 matrix products, as the reference repositories train (opt-in tf32 /
  bf16: engine.precision, with what they do to grokking).
- tickets: magnitude pruning with one global threshold (Minegishi et al., gouki510/Grokking-Tickets
  config/config_pruning.py line 56 scope "global"); the rate has no default (a ticket names it).
- threshold 0.99 for step_fit/step_gen (and the early stop after `patience` evals above it).
- mlp width 64, depth 1 and the 4000-step budget are grokscan's own choice: small enough that one run takes
  under a minute on one laptop CPU core, while weight_decay=1 groks and weight_decay=0 memorizes within the
  budget (measured: see README).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, fields
from typing import Any

from grokscan.errors import UserError
from grokscan.registry import BY_FIELD, MODELS, TASKS, cfg_error, closest

DTYPES = ("float32", "float64")
MATMUL_PRECISIONS = ("float32", "tf32", "bf16")  # engine.precision; float32 (None) is the default
SEED_FIELDS = ("seed", "split_seed")  # replicate a grid point rather than make a new one


@dataclass(frozen=True)
class RunConfig:
    """One run. Fields that do not apply to the chosen task/model/optimizer/filter are normalized to None.

    A new field must default to the value that reproduces the behaviour from before it existed: run ids
    leave out such fields while they hold that value (see `run_id`).
    """

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
    width: int | None = None  # None: the model's default (64 for the mlp, 128 = d_model for the transformer)
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
    n_digits: int | None = None  # add_digits: digits per operand (default 5)
    vocab: int | None = None  # repeat_subseq, max_of_seq: value tokens 0..vocab-1
    seq_len: int | None = None  # repeat_subseq, max_of_seq: random tokens per sequence
    sub_len: int | None = None  # repeat_subseq: tokens in the repeated subsequence (its first is the cue)
    train_size: int | None = None  # sequence tasks, finite regime: training examples drawn from split_seed
    regime: str | None = None  # sequence tasks: finite (train_size examples) | infinite (fresh each step)
    val_size: int | None = None  # sequence tasks: fixed held-out examples step_gen is measured on
    loss_dtype: str | None = None  # losses: dtype the loss is computed in (None: the model's `dtype`)
    grokfast_window: int | None = None  # grokfast_ma: gradients averaged (Lee et al. 2024: 100)
    grokfast_ma_lamb: float | None = None  # grokfast_ma: weight of the average (Lee et al. 2024: 5.0)
    norm_constraint: str | None = None  # optimizers: "init" holds the weight norm at its init (Omnigrok)
    embed_lr: float | None = None  # optimizers: the token embedding's own lr (Liu et al. 2022); None: lr
    embed_weight_decay: float | None = None  # optimizers: the embedding's weight decay; None: weight_decay
    dim: int | None = None  # xor_cluster: input dimension d (default 2000)
    cluster_norm: float | None = None  # xor_cluster: ||mu1|| = ||mu2|| of the cluster means (default 14)
    layernorm: str | None = None  # transformer: "post" (Power et al. 2022) | "pre"; None: no LayerNorm
    biases: str | None = None  # "off": transformer, no MLP-sublayer biases; mlp, no biases; None: kept
    pos_encoding: str | None = None  # transformer: "sinusoidal" (Power et al. 2022); None: learned
    input_format: str | None = None  # transformer, binary tables: "eos_x_op_y" (Power); None: x y =
    batch_rule: str | None = None  # "half_up_to_512": batch_size = min(512, ceil(n_train / 2)) (Power)
    mlp_input: str | None = None  # mlp, token tasks: embed_concat (None) | embed_sum (Liu) | onehot (Prieto)
    embed_dim: int | None = None  # mlp embed_*: embedding width (None: width)
    matmul_precision: str | None = (
        None  # float32 runs: None (= "float32") | "tf32" | "bf16" (engine.precision)
    )
    ticket: str = "none"  # engine.tickets: none | magnitude | random | dense_l1 | dense_l2
    parent: str | None = None  # tickets: run id of the stored run whose final weights are pruned
    prune_rate: float | None = None  # tickets: fraction of the prunable weights pruned, in (0, 1)
    prune_scope: str | None = None  # tickets: global (one threshold, Minegishi et al.'s default) | layer

    def __post_init__(self) -> None:
        if self.width is None and isinstance(self.model, str) and self.model in MODELS:
            object.__setattr__(self, "width", MODELS.get(self.model).default_width)
        _validate(self)
        for name, value in _normalized(self).items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build from a plain dict, rejecting unknown keys with the closest valid name."""
        for key in values:
            if key not in FIELD_NAMES:
                raise UserError(f"unknown RunConfig field {key!r}{closest(key, FIELD_NAMES)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def run_id(self) -> str:
        """Stable 16-hex-digit hash of what can change this run's training.

        The fields of grokscan 0.1's first results (IDENTITY_V1) are always hashed, with fields since retired
        from training at their old constant value, so the ids of stored runs never change. A field added
        later is hashed only when it is set (not None) and differs from its default: a new option left at
        the behaviour it reproduces changes no id. Analysis-only parameters are not fields at all.
        """
        values = self.to_dict()
        key = {name: values.get(name, RETIRED.get(name)) for name in IDENTITY_V1}
        for f in fields(self):
            value = values[f.name]
            if f.name not in key and value is not None and value != f.default:
                key[f.name] = value
        blob = json.dumps(key, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def n_rows(self) -> int:
        """Rows in the task's full table."""
        return TASKS.get(self.task).dims(self).n_rows

    @property
    def n_train(self) -> int:
        """Training rows: round(frac * n_rows) (Python rounding, as in the split); a task that draws its own
        examples says how many a step trains on (`Task.n_train`)."""
        return TASKS.get(self.task).n_train(self)


FIELD_NAMES = tuple(f.name for f in fields(RunConfig))
FIELD_TYPES = {f.name: f.type for f in fields(RunConfig)}
# The identity of grokscan 0.1 (every field it had), and retired fields at the value they were hashed with:
# `gap` became an analysis parameter (results.phases) at its old default.
IDENTITY_V1 = (
    *("task", "p", "n_bits", "k_bits", "n_samples", "frac", "seed", "split_seed", "label_noise", "model"),
    *("width", "depth", "heads", "d_mlp", "activation", "alpha", "optimizer", "lr", "weight_decay"),
    *("beta1", "beta2", "eps", "momentum", "warmup", "batch_size", "loss", "grad_filter", "grokfast_alpha"),
    *("grokfast_lamb", "dtype", "steps", "eval_every", "threshold", "patience", "gap"),
)
RETIRED = {"gap": 1000}
# Minibatch sizes that depend on the training set size, by name -> batch_size for n_train rows.
# half_up_to_512: Power et al. 2022, "minibatch size 512 or half of training dataset size (whichever is
# smaller)"; openai/grok grok/data.py:434-435 (batchsize_hint 0, the default of training.py:79-85).
BATCH_RULES = {"half_up_to_512": lambda n_train: min(512, math.ceil(n_train / 2))}


def _check_types(cfg: RunConfig) -> None:
    for name in FIELD_NAMES:
        value, kind = getattr(cfg, name), FIELD_TYPES[name]
        if value is None:
            if "None" not in kind:
                raise cfg_error(name, value, "a value is required")
        elif kind.startswith("int"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise cfg_error(name, value, "must be an integer")
        elif kind.startswith("float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise cfg_error(name, value, "must be a finite number")
        elif not isinstance(value, str):
            raise cfg_error(name, value, "must be a string")


def _at_least(cfg: RunConfig, names: tuple[str, ...], low: int) -> None:
    for name in names:
        if getattr(cfg, name) < low:
            raise cfg_error(name, getattr(cfg, name), f"must be >= {low}")


def _validate(cfg: RunConfig) -> None:
    _check_types(cfg)
    for name, registry in BY_FIELD.items():
        value = getattr(cfg, name)
        if value not in registry:
            raise cfg_error(
                name, value, f"not a registered {registry.kind}{closest(value, registry.names())}"
            )
    if cfg.dtype not in DTYPES:
        raise cfg_error("dtype", cfg.dtype, f"not a known dtype{closest(cfg.dtype, DTYPES)}")
    if cfg.matmul_precision is not None and cfg.matmul_precision not in MATMUL_PRECISIONS:
        allowed = "one of " + ", ".join(map(repr, MATMUL_PRECISIONS)) + " or None (float32)"
        raise cfg_error("matmul_precision", cfg.matmul_precision, allowed)
    if cfg.matmul_precision in ("tf32", "bf16") and cfg.dtype != "float32":
        raise cfg_error(
            "matmul_precision", cfg.matmul_precision, f"applies to dtype 'float32' runs, not {cfg.dtype!r}"
        )
    for name, registry in BY_FIELD.items():
        registry.get(getattr(cfg, name)).validate(cfg)
    if not 0 < cfg.frac < 1:
        raise cfg_error("frac", cfg.frac, "must be strictly between 0 and 1")
    n_rows, n_train = cfg.n_rows, cfg.n_train
    if TASKS.get(cfg.task).frac_split and not 1 <= n_train <= n_rows - 1:
        raise cfg_error(
            "frac", cfg.frac, f"gives {n_train} of {n_rows} rows for training; need >= 1 on each side"
        )
    _at_least(cfg, ("width", "depth", "steps", "eval_every", "patience"), 1)
    _at_least(cfg, ("seed", "warmup"), 0)
    if cfg.steps % cfg.eval_every:
        raise cfg_error("steps", cfg.steps, f"must be a multiple of eval_every ({cfg.eval_every})")
    if cfg.batch_size is not None and not 1 <= cfg.batch_size <= n_train:
        raise cfg_error(
            "batch_size", cfg.batch_size, f"must be in [1, {n_train}] (training rows) or None for full batch"
        )
    _check_batch_rule(cfg)
    if cfg.split_seed is not None and cfg.split_seed < 0:
        raise cfg_error("split_seed", cfg.split_seed, "must be >= 0 (or None to use seed)")
    if not 0 <= cfg.label_noise < 1:
        raise cfg_error("label_noise", cfg.label_noise, "must be in [0, 1)")
    for name in ("alpha", "lr"):
        if getattr(cfg, name) <= 0:
            raise cfg_error(name, getattr(cfg, name), "must be > 0")
    if cfg.weight_decay < 0:
        raise cfg_error("weight_decay", cfg.weight_decay, "must be >= 0")
    if not 0 < cfg.threshold <= 1:
        raise cfg_error("threshold", cfg.threshold, "must be in (0, 1]")


def _check_batch_rule(cfg: RunConfig) -> None:
    if cfg.batch_rule is None:
        return
    if cfg.batch_rule not in BATCH_RULES:
        raise cfg_error("batch_rule", cfg.batch_rule, f"one of {', '.join(BATCH_RULES)} or None")
    if cfg.batch_size is not None:
        raise cfg_error("batch_size", cfg.batch_size, "must be None when batch_rule sets it")
    if not TASKS.get(cfg.task).frac_split:
        raise cfg_error(
            "batch_rule", cfg.batch_rule, f"task {cfg.task!r} has no training fraction; set batch_size"
        )


def _normalized(cfg: RunConfig) -> dict[str, Any]:
    """Canonical values: floats as float, split_seed resolved, the entries' own defaults resolved, and the
    fields of every other entry of each registry set to None (they cannot affect this run)."""
    out: dict[str, Any] = {"split_seed": cfg.seed if cfg.split_seed is None else cfg.split_seed}
    if cfg.matmul_precision == "float32":  # the default, spelled out: the same run, the same id
        out["matmul_precision"] = None
    for name in FIELD_NAMES:
        if FIELD_TYPES[name].startswith("float") and getattr(cfg, name) is not None:
            out[name] = float(getattr(cfg, name))
    for name, registry in BY_FIELD.items():
        entry = registry.get(getattr(cfg, name))
        out.update(dict.fromkeys(registry.owned_fields() - set(entry.fields)))
        out.update(entry.normalize(cfg))
    if cfg.batch_rule is not None:  # resolved: the run is the one that names this batch_size (same run_id)
        out["batch_size"], out["batch_rule"] = BATCH_RULES[cfg.batch_rule](cfg.n_train), None
    return out


def check_range(cfg: RunConfig, name: str, low: float, high: float, closed_high: bool = False) -> None:
    """Raise unless low <= cfg.<name> < high (<= high when closed_high); None passes (field not set)."""
    value = getattr(cfg, name)
    if value is not None and not (low <= value <= high if closed_high else low <= value < high):
        raise cfg_error(name, value, f"must be in [{low:g}, {high:g}{']' if closed_high else ')'}")
