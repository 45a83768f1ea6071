"""Nanda et al. 2023, "Progress measures for grokking via mechanistic interpretability": steps to
generalize against the training fraction on x+y mod 113, at their code's settings (mechanistic-
interpretability-grokking/progress-measures-paper transformers.py, commit 23d2c64; tests/test_presets.py
checks each value against file and line).

A 1-layer transformer without LayerNorm: d_model 128, 4 heads, d_mlp 512, ReLU, inputs x y = ; AdamW lr
1e-3, weight decay 1, betas (0.9, 0.98), 10-step linear warmup, full batch, 50,000 steps. The fractions
are those of their fraction sweep (saved_runs/mod_addition_frac_train_sweep.pth: 0.95 ... 0.25). 3 seeds.

Not expressible yet: nothing of the model that the fraction sweep depends on, as far as grokscan can tell
(grokscan's transformer is theirs: no LayerNorm, N(0, 1/d_model) weights, biases only in the MLP). Their
code has no accuracy threshold; step_fit / step_gen use grokscan's 0.99.
CPU size (their modulus, three fractions, a 4,000-step budget): --set steps=4000 --set "frac=[0.4,0.5,0.7]"
"""

from ray import tune

param_space = {
    "task": "x+y",
    "p": 113,
    "model": "transformer",
    "width": 128,
    "depth": 1,
    "heads": 4,
    "d_mlp": 512,
    "activation": "relu",
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 1.0,
    "beta1": 0.9,
    "beta2": 0.98,
    "warmup": 10,
    "batch_size": None,
    "steps": 50000,
    "eval_every": 100,
    "frac": tune.grid_search([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.28, 0.25]),
    "seed": tune.grid_search([0, 1, 2]),
}
