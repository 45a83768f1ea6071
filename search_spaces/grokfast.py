"""Grokfast's EMA gradient filter vs plain AdamW over weight decay, in the slow-grokking regime.

Lee et al. 2024: g <- g + lambda * EMA_alpha(g) (alpha 0.98, lambda 2) shortens the time to generalize.
Compared against AdamW at every weight decay of the grid, so the baseline is tuned rather than wd 0 only.
x+y mod 59, MLP, frac 0.5 (near the critical fraction, where grokking is slow), 6,000 steps, 2 seeds.
Paper scale: --set p=97 --set model=transformer --set depth=2 --set steps=50000.
"""

from ray import tune

param_space = {
    "p": 59,
    "frac": 0.5,
    "lr": 3e-3,
    "steps": 6000,
    "grad_filter": tune.grid_search(["none", "grokfast"]),
    "weight_decay": tune.grid_search([0.0, 0.3, 1.0, 3.0]),
    "seed": tune.grid_search([0, 1]),
}
