"""Init scale alpha x weight decay on the digits task (MLP, MSE loss), the Omnigrok setting.

Liu et al. 2022 ("Omnigrok"): a large alpha with small weight decay delays generalization (the weights must
shrink to the "Goldilocks" norm first); alpha near 1 does not need weight decay to generalize.
Paper scale: task=mnist with frac so that 1,000 images train (files under $GROKSCAN_DATA), steps=100000.
"""

from ray import tune

param_space = {
    "task": "digits",
    "frac": 0.5,
    "loss": "mse",
    "width": 200,
    "depth": 2,
    "steps": 4000,
    "threshold": 0.9,
    "alpha": tune.grid_search([0.5, 1.0, 2.0, 4.0, 8.0]),
    "weight_decay": tune.grid_search([0.0, 0.01, 0.1, 1.0]),
}
