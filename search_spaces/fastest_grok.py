"""Fastest grokking: Optuna's TPE sampler minimizes step_gen over lr x weight decay x init scale alpha.

x+y mod 59, MLP, AdamW, frac 0.6, 3,000-step budget. A run that never generalizes counts as twice the
budget, so the sampler learns to avoid the memorization corner (small weight decay, large alpha; Liu et al.
2022 "Omnigrok") as well as to speed grokking up. 30 runs; rerunning adds none (stored runs warm-start it).
"""

from ray import tune
from ray.tune.search.optuna import OptunaSearch

search_alg = OptunaSearch(seed=0)
num_samples = 30
metric, mode = "step_gen", "min"
param_space = {
    "task": "x+y",
    "p": 59,
    "frac": 0.6,
    "steps": 3000,
    "lr": tune.loguniform(1e-3, 1e-2),
    "weight_decay": tune.loguniform(0.03, 10.0),
    "alpha": tune.loguniform(0.5, 4.0),
}
