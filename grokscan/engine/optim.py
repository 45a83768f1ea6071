"""Functional optimizers over a pack's flat parameters [M, P], and the update that combines one with a
gradient filter (engine.filters) and linear warmup.

Every hyperparameter is a per-member column [M, 1], so members of one pack may use different lr, weight
decay, betas, warmup. Update rules match torch.optim (AdamW: decoupled decay, Loshchilov & Hutter 2019;
Adam and SGD: L2 added to the gradient), so a one-member pack reproduces torch.optim within float rounding.

`norm_constraint` "init" (every optimizer) is Omnigrok's constrained optimization (Liu et al. 2022,
"Omnigrok: grokking beyond algorithmic data"): after each update all parameters are multiplied by
sqrt(N0 / N), N the sum of squares of every parameter and N0 its value after init and `alpha`, so the
total weight norm stays alpha times its init value (KindXiaoming/Omnigrok,
mnist/landscape/mnist-landscape.ipynb, first cell, lines 56-64 `L2`/`rescale`, 77-78, 106-108).

`embed_lr` and `embed_weight_decay` (every optimizer) give the token embedding its own learning rate and
weight decay, as Liu et al. 2022 ("Towards understanding grokking") train their representations with
their own optimizer, Adam lr 1e-3 without decay, beside the decoder's AdamW (ejmichaud/grokking-squared,
phase_diagram-classification.ipynb cell 1, lines 246-248). When a member of a pack sets one, lr and
weight_decay become [M, P] tensors: each element holds its member's value, so members that set neither
do the same arithmetic as with an [M, 1] column.
"""

from __future__ import annotations

from typing import Any

import torch

from grokscan.config import RunConfig, check_range
from grokscan.registry import GRAD_FILTERS, MODELS, OPTIMIZERS, TASKS, Entry, cfg_error

State = dict[str, Any]  # per-member tensors [M, ...] (or None before first use)


class Hyper(dict):
    """Per-member hyperparameter columns [M, 1] by field name, readable as attributes (h.lr)."""

    __getattr__ = dict.__getitem__

    @classmethod
    def from_configs(cls, configs: list[RunConfig], names: list[str], dtype: torch.dtype, device) -> Hyper:
        def column(name: str) -> torch.Tensor:
            values = [float(getattr(c, name) or 0.0) for c in configs]
            return torch.tensor(values, dtype=dtype, device=device).unsqueeze(1)

        return cls({name: column(name) for name in names})

    def select(self, keep: torch.Tensor) -> Hyper:
        return Hyper({name: column[keep] for name, column in self.items()})

    def per_element(self, n_params: int) -> Hyper:
        """lr and weight_decay broadcast to [M, n_params] (the same value in every element of a member)."""
        return Hyper(
            {k: v.expand(-1, n_params) if k in EMBED_FIELDS.values() else v for k, v in self.items()}
        )


NORM_CONSTRAINTS = ("none", "init")
EMBED_FIELDS = {"embed_lr": "lr", "embed_weight_decay": "weight_decay"}  # -> the field they override
COMMON = ("norm_constraint", *EMBED_FIELDS)  # fields of every optimizer that are not [M, 1] columns


class Rule(Entry):
    """An optimizer entry: `fields` are its hyperparameters (per-member columns) and COMMON,
    `state_copies` the parameter-sized tensors of state it keeps (pack memory estimates)."""

    state_copies = 0

    @property
    def hypers(self) -> tuple[str, ...]:
        return tuple(f for f in self.fields if f not in COMMON)

    def validate(self, cfg: RunConfig) -> None:
        if cfg.norm_constraint not in (None, *NORM_CONSTRAINTS):
            raise cfg_error("norm_constraint", cfg.norm_constraint, "one of 'none', 'init' (Omnigrok)")
        if cfg.embed_lr is not None and cfg.embed_lr <= 0:
            raise cfg_error("embed_lr", cfg.embed_lr, "must be > 0 (or None for lr)")
        if cfg.embed_weight_decay is not None and cfg.embed_weight_decay < 0:
            raise cfg_error("embed_weight_decay", cfg.embed_weight_decay, "must be >= 0 (or None)")
        if cfg.embed_lr is not None or cfg.embed_weight_decay is not None:
            name = "embed_lr" if cfg.embed_lr is not None else "embed_weight_decay"
            if "embed" not in MODELS.get(cfg.model).spec(cfg, TASKS.get(cfg.task).dims(cfg)):
                raise cfg_error(name, getattr(cfg, name), "needs a model with a token embedding")

    def normalize(self, cfg: RunConfig) -> dict:
        out: dict = {"norm_constraint": None} if cfg.norm_constraint == "none" else {}
        for name, base in EMBED_FIELDS.items():  # the embedding at the run's own value: not a group
            if getattr(cfg, name) is not None and float(getattr(cfg, name)) == float(getattr(cfg, base)):
                out[name] = None
        return out

    def init_state(self, flat: torch.Tensor, h: Hyper) -> State:
        return {}

    def step(self, state: State, flat: torch.Tensor, grad: torch.Tensor, h: Hyper, lr, t) -> None:
        """One update in place; t: each member's own update count [M, 1] (1 at its first update)."""
        raise NotImplementedError


class AdamFamily(Rule):
    """Adam (Kingma & Ba 2015) with L2 in the gradient, or AdamW's decoupled decay."""

    fields = ("beta1", "beta2", "eps", *COMMON)
    state_copies = 2

    def __init__(self, name: str, decoupled: bool) -> None:
        self.name, self.decoupled = name, decoupled

    def validate(self, cfg: RunConfig) -> None:
        super().validate(cfg)
        for name in ("beta1", "beta2"):
            check_range(cfg, name, 0, 1)
        if cfg.eps is None or cfg.eps <= 0:
            raise cfg_error("eps", cfg.eps, "must be > 0")

    def init_state(self, flat: torch.Tensor, h: Hyper) -> State:
        # beta**t as running products: a vectorized pow over a pack's [M, 1] column rounds differently from
        # the scalar pow a lone member gets, which breaks pack invariance.
        return {
            "m": torch.zeros_like(flat),
            "v": torch.zeros_like(flat),
            "beta1_t": torch.ones_like(h.beta1),
            "beta2_t": torch.ones_like(h.beta2),
        }

    def step(self, state: State, flat: torch.Tensor, grad: torch.Tensor, h: Hyper, lr, t) -> None:
        if self.decoupled:
            flat.mul_(1 - lr * h.weight_decay)
        else:
            grad = grad + h.weight_decay * flat
        state["m"].lerp_(grad, 1 - h.beta1)
        state["v"].mul_(h.beta2).add_((grad * grad).mul_(1 - h.beta2))
        state["beta1_t"], state["beta2_t"] = state["beta1_t"] * h.beta1, state["beta2_t"] * h.beta2
        step_size = lr / (1 - state["beta1_t"])
        # one [M, P] temporary, reused in place; the same roundings as step_size * (m / denom)
        update = state["v"].sqrt().div_((1 - state["beta2_t"]).sqrt()).add_(h.eps)
        flat.sub_(torch.div(state["m"], update, out=update).mul_(step_size))


class SGD(Rule):
    """SGD with heavy-ball momentum and L2 in the gradient (torch.optim.SGD, dampening 0)."""

    name = "sgd"
    fields = ("momentum", *COMMON)
    state_copies = 1

    def validate(self, cfg: RunConfig) -> None:
        super().validate(cfg)
        check_range(cfg, "momentum", 0, 1)

    def step(self, state: State, flat: torch.Tensor, grad: torch.Tensor, h: Hyper, lr, t) -> None:
        grad = grad + h.weight_decay * flat
        first = t == 1  # the buffer starts as the first gradient (members that joined a running pack too)
        if "m" not in state or bool(first.all()):
            state["m"] = grad.clone()
        elif bool(first.any()):
            state["m"] = torch.where(first, grad, state["m"] * h.momentum + grad)
        else:
            state["m"].mul_(h.momentum).add_(grad)
        flat.sub_(lr * state["m"])


OPTIMIZERS.register(AdamFamily("adamw", decoupled=True))
OPTIMIZERS.register(AdamFamily("adam", decoupled=False))
OPTIMIZERS.register(SGD())


class Optimizer:
    """One pack's update: gradient filter, then the optimizer rule, with warmup lr * min(1, t / warmup),
    then the norm constraint."""

    def __init__(
        self, cfg: RunConfig, configs: list[RunConfig], flat: torch.Tensor, segments, embed=None
    ) -> None:
        """`segments`: the weights' column ranges in flat; `embed`: the token embedding's, or None."""
        self.cfg = cfg
        self.rule: Rule = OPTIMIZERS.get(cfg.optimizer)
        self.filter = GRAD_FILTERS.get(cfg.grad_filter)
        self.embed = embed
        names = ["lr", "weight_decay", "warmup", *self.rule.hypers, *self.filter.fields]
        self.h = self._hyper(configs, names, flat)
        self.state = self.rule.init_state(flat, self.h)
        self.filter_state = self.filter.init_state(flat)
        self.segments = segments
        # each member's updates so far (members join at different steps)
        self.t = torch.zeros_like(self.h.warmup)
        self.norm_target = _norm_target(cfg, flat)

    def select(self, keep: torch.Tensor) -> None:
        """Keep only the members at indices `keep`."""
        self.h, self.t = self.h.select(keep), self.t[keep]
        self.norm_target = self.norm_target[keep] if self.norm_target is not None else None
        for state in (self.state, self.filter_state):
            for name, value in state.items():
                state[name] = value[keep.to(value.device)] if value is not None else None

    def add(self, configs: list[RunConfig], flat: torch.Tensor) -> None:
        """Append members that start now (their parameters `flat`): fresh state, update count 0. Only for
        filters without state (a stateful filter's first update is not per member)."""
        if self.filter.state_copies:
            raise ValueError(f"members cannot join a pack with grad_filter {self.filter.name!r}")
        h = self._hyper(configs, list(self.h), flat)
        if h.lr.shape[1] != self.h.lr.shape[1]:  # the pack's first embedding group: every member per element
            self.h, h = self.h.per_element(flat.shape[1]), h.per_element(flat.shape[1])
        fresh = self.rule.init_state(flat, h)
        for name, value in self.state.items():  # state a rule makes at its first update: zeros, unused
            self.state[name] = torch.cat([value, fresh.get(name, torch.zeros_like(flat))])
        self.h = Hyper({name: torch.cat([column, h[name]]) for name, column in self.h.items()})
        self.t = torch.cat([self.t, torch.zeros_like(h.warmup)])
        if self.norm_target is not None:
            self.norm_target = torch.cat([self.norm_target, _norm_target(self.cfg, flat)])

    def _hyper(self, configs: list[RunConfig], names: list[str], flat: torch.Tensor) -> Hyper:
        """The members' columns; lr and weight_decay per element [M, P] when a member gives the embedding
        its own (EMBED_FIELDS)."""
        h = Hyper.from_configs(configs, names, flat.dtype, flat.device)
        if self.embed is None or all(getattr(c, f) is None for c in configs for f in EMBED_FIELDS):
            return h
        a, b = self.embed
        h = h.per_element(flat.shape[1])
        for own, base in EMBED_FIELDS.items():
            full = h[base].clone()
            values = [getattr(c, base) if getattr(c, own) is None else getattr(c, own) for c in configs]
            full[:, a:b] = torch.tensor(values, dtype=flat.dtype, device=flat.device).unsqueeze(1)
            h[base] = full
        return h

    @torch.no_grad()
    def update(self, flat: torch.Tensor, grad: torch.Tensor) -> None:
        """One step in place (each member's update t is 1-based)."""
        self.t += 1
        h, t = self.h, self.t
        lr = h.lr * torch.clamp(t / h.warmup.clamp(min=1), max=1.0)
        grad = self.filter.apply(self.filter_state, flat, grad, h, self.segments)
        self.rule.step(self.state, flat, grad, h, lr, t)
        if self.norm_target is not None:
            flat.mul_((self.norm_target / (flat * flat).sum(1, keepdim=True)).sqrt())


def _norm_target(cfg: RunConfig, flat: torch.Tensor) -> torch.Tensor | None:
    """Squared total norm per member to hold after every update (norm_constraint "init", a pack_key field:
    one setting per pack), from the members' parameters at init."""
    return (flat * flat).sum(1, keepdim=True) if cfg.norm_constraint == "init" else None
