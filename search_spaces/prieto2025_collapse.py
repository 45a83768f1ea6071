"""Prieto et al. 2025, "Grokking at the edge of numerical stability", Fig. 2: softmax collapse without
weight decay, float32 vs float64 loss, at their code's settings (LucasPrietoAl/grokking-at-the-edge-of-
numerical-stability, commit 0cc9e8d; tests/test_presets.py checks each value against file and line).

x+y mod 113, training fractions 0.4 / 0.6 / 0.7; an MLP reading the operands' one-hot vectors (2 x 113
inputs) through two hidden layers of 200 (ReLU), no biases (utils.py:186-187, datasets.py:56-59); AdamW lr
5e-4, betas (0.9, 0.99), eps 1e-25, weight decay 0, no warmup; full batch; 20,000 steps; a float32 model
whose cross-entropy is computed in float32 or in float64 (their `--softmax_precision 32 | 64`: the logits
are cast before the log-softmax). 3 seeds.

Not expressible yet: their float16 loss (`--softmax_precision 16`) has no grokscan dtype. Fig. 2's frac-0.4
runs also set eps 1e-30 (run_main_experiments.sh:59-61; `--set eps=1e-30 --set "frac=[0.4]"`). Their code
has no accuracy threshold; step_fit / step_gen use grokscan's 0.99 (analysis: `--threshold 0.9`).
CPU size (mod 59, one fraction, half the budget): --set p=59 --set steps=10000 --set "frac=[0.6]"
"""

from ray import tune

param_space = {
    "task": "x+y",
    "p": 113,
    "model": "mlp",
    "mlp_input": "onehot",
    "biases": "off",
    "width": 200,
    "depth": 2,
    "activation": "relu",
    "optimizer": "adamw",
    "lr": 5e-4,
    "beta1": 0.9,
    "beta2": 0.99,
    "eps": 1e-25,
    "weight_decay": 0.0,
    "warmup": 0,
    "batch_size": None,
    "loss": "ce",
    "dtype": "float32",
    "steps": 20000,
    "eval_every": 100,
    "frac": tune.grid_search([0.4, 0.6, 0.7]),
    "loss_dtype": tune.grid_search(["float32", "float64"]),
    "seed": tune.grid_search([0, 1, 2]),
}
