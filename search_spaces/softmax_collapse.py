"""No weight decay: softmax cross-entropy in float32 vs StableMax, float64 and ⊥Grad (Prieto et al. 2025).

Prieto et al.: without weight decay, float32 softmax training stalls once most training rows reach exactly
zero loss (softmax collapse, column zero_loss_frac); StableMax or float64 delay the collapse and let the
model generalize, and ⊥Grad (grad_filter "perp") generalizes faster than plain AdamW. x+y mod 59, MLP,
AdamW with weight decay 0, frac 0.6, 6,000-step budget, 2 seeds.
Paper scale: --set p=113 --set frac=0.4 --set width=200 --set depth=2 --set steps=40000.
"""

from ray import tune

param_space = {
    "p": 59,
    "frac": 0.6,
    "lr": 3e-3,
    "weight_decay": 0.0,
    "steps": 6000,
    "loss": tune.grid_search(["ce", "stablemax"]),
    "dtype": tune.grid_search(["float32", "float64"]),
    "grad_filter": tune.grid_search(["none", "perp"]),
    "seed": tune.grid_search([0, 1]),
}
