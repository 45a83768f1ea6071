"""Liu et al. 2022, "Towards understanding grokking: an effective theory of representation learning": the
phase diagram of modular addition over the decoder's learning rate and weight decay, at their code's
settings where grokscan can express them (ejmichaud/grokking-squared
phase_diagram_plot/phase_diagram-classification.ipynb, commit 0229df9; tests/test_presets.py checks each
value against the notebook's cell and line).

Addition of 0..9 (p = 10), 45 of the 55 sums for training; a decoder MLP of two hidden layers of 200 with
tanh (cell 1, lines 179-192) that reads the sum of the operands' 1-D learned representations, enc(x) +
enc(y) (lines 199-203: mlp_input embed_sum, embed_dim 1); cross-entropy; AdamW, learning rate 10^(-4 ... -2)
(11 values) x weight decay 0, 2, ..., 20; no warmup; full batch; 100,000 steps; phases named at accuracy 0.9
with a 1,000-step gap between fit and generalization (their compute budget 1e5 and threshold 1e3,
simple_phase_diagram.ipynb). Runs stop early once both accuracies pass 0.9, the threshold they measure at.

The representations have their own optimizer, Adam lr 1e-3 without decay (line 247: embed_lr 1e-3,
embed_weight_decay 0); the decoder's AdamW has torch's default betas (0.9, 0.999) and eps (line 248).

Not expressible yet: their representations start at U(-1/2, 1/2) (line 246); grokscan's embedding at
N(0, 1). They classify the integer sum x + y into 19 classes, with a loss averaged over those 19
outputs (line 266); grokscan's x+y is mod p (10 classes) with the usual cross-entropy. Their table has 55
unordered pairs (x <= y); grokscan's has 100 ordered ones, of which frac = 45/55 train. Their regression
variant (MSE on random templates of the sum) has no grokscan task; this is their classification
notebook's setting. Their notebook trains one seed (6); 3 seeds here.
CPU size: --set steps=10000 --set "lr=[1e-4,1e-3,1e-2]" --set "weight_decay=[0,6,20]"
"""

from ray import tune

param_space = {
    "task": "x+y",
    "p": 10,
    "frac": 45 / 55,
    "model": "mlp",
    "mlp_input": "embed_sum",
    "embed_dim": 1,
    "width": 200,
    "depth": 2,
    "activation": "tanh",
    "optimizer": "adamw",
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    "embed_lr": 1e-3,
    "embed_weight_decay": 0.0,
    "warmup": 0,
    "batch_size": None,
    "steps": 100000,
    "eval_every": 100,
    "threshold": 0.9,
    "lr": tune.grid_search([10 ** (-4 + k / 5) for k in range(11)]),
    "weight_decay": tune.grid_search([float(w) for w in range(0, 22, 2)]),
    "seed": tune.grid_search([0, 1, 2]),
}
