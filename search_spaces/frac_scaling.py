"""Training fraction x 5 seeds on x+y mod 59 (MLP, AdamW): steps to generalize vs data fraction.

Power et al. 2022 (Fig. 1 left): the steps needed to generalize grow exponentially as the fraction of
training data shrinks; `grokscan fit` fits log(step_gen) = a - b * frac with censored runs counted as such.
Paper scale: --set p=97 --set steps=100000 --set "seed=[0,1,2,3,4,5,6,7,8,9]".
"""

from ray import tune

param_space = {
    "task": "x+y",
    "p": 59,
    "lr": 3e-3,
    "steps": 6000,
    "frac": tune.grid_search([0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7]),
    "seed": tune.grid_search([0, 1, 2, 3, 4]),
}
