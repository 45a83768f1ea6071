"""Progress measures (Nanda et al. 2023) beside accuracy on modular addition: the default MLP on x+y mod 97
at frac 0.5, weight decay 1 (it groks within the 4000-step budget) and 0 (it memorizes), 2 seeds. Each run
records the embedding's Fourier measures, the restricted / excluded loss and per-layer norms at every
eval; about a minute on one CPU core per run. `patience` is large so the curves go on after generalizing."""

from ray import tune

name = "progress_measures"
record = {"metrics": ["fourier", "key_freq_losses", "layer_norms"]}
param_space = {
    "task": "x+y",
    "p": 97,
    "steps": 4000,
    "patience": 1000,
    "weight_decay": tune.grid_search([1.0, 0.0]),
    "seed": tune.grid_search([0, 1]),
}
