"""Critical data fraction per weight decay: where at least half of the seeds generalize within the budget.

Bisection over frac in [0.2, 0.8] to +-0.025 for each weight decay (grokscan.CriticalFraction),
each point trained for all 3 seeds at once: at most 6 points per weight decay instead of the 13 of a dense
grid at that resolution (measured in the README). x+y mod 59, MLP, AdamW, 3,000-step budget, as wd_vs_frac.
"""

from ray import tune

from grokscan import CriticalFraction

search_alg = CriticalFraction(tol=0.025)
param_space = {
    "task": "x+y",
    "p": 59,
    "lr": 3e-3,
    "steps": 3000,
    "weight_decay": tune.grid_search([0.3, 1.0, 3.0]),
    "seed": tune.grid_search([0, 1, 2]),
    "frac": tune.uniform(0.2, 0.8),
}
