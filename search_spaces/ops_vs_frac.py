"""Operation x training fraction mod 59 (MLP, AdamW): symmetric ops generalize at lower fractions.

Power et al. 2022 (Fig. 1 right): x+y and x*y need the least data; x-y and x/y more; x^2+xy+y^2 and
x^3+xy much more or not at all within the budget.
Paper scale: --set p=97 --set model=transformer --set depth=2 --set steps=100000.
"""

from ray import tune

param_space = {
    "p": 59,
    "lr": 3e-3,
    "steps": 3000,
    "task": tune.grid_search(["x+y", "x*y", "x-y", "x/y", "x^2+xy+y^2", "x^3+xy"]),
    "frac": tune.grid_search([0.3, 0.5, 0.7]),
}
