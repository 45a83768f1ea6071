"""Smoke test: a 2x2 grid of tiny runs on x+y mod 11; seconds on any machine (used by tests and CI)."""

from ray import tune

name = "smoke"
param_space = {
    "task": "x+y",
    "p": 11,
    "width": 16,
    "lr": 1e-2,
    "steps": 200,
    "eval_every": 50,
    "frac": tune.grid_search([0.5, 0.7]),
    "weight_decay": tune.grid_search([0.0, 1.0]),
}
