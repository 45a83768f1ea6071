"""Weight decay x training fraction on x+y mod 59 (MLP, AdamW), 2 seeds: the default demo.

Weight decay 0 memorizes; a little weight decay groks late; more groks soon after fitting (Liu et al. 2022
phases; Power et al. 2022 Fig. 2 for the fraction axis). About 4.5 minutes on a 2-core laptop (README).
Paper scale: --set p=97 --set steps=20000 --set "seed=[0,1,2,3,4]".
"""

from ray import tune

param_space = {
    "task": "x+y",
    "p": 59,
    "lr": 3e-3,
    "steps": 3000,
    "frac": tune.grid_search([0.4, 0.5, 0.6, 0.7, 0.8]),
    "weight_decay": tune.grid_search([0.0, 0.3, 1.0, 3.0]),
    "seed": tune.grid_search([0, 1]),
}
