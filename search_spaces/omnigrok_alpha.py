"""Liu et al. 2022, "Omnigrok: grokking beyond algorithmic data": MNIST's generalization against the
weight norm alpha, with the norm held fixed (constrained optimization), at their code's settings
(KindXiaoming/Omnigrok mnist/landscape/mnist-landscape.ipynb, commit 3a0a573; tests/test_presets.py checks
each value against the notebook's cell and line).

1,000 training images (one data size of their landscape), an MLP of two hidden layers of 200 (ReLU),
PyTorch's default init scaled by alpha, MSE on one-hot targets, AdamW lr 1e-3 with PyTorch's default betas
(0.9, 0.999) and eps 1e-8, weight decay 0, no warmup, minibatches of 100, 10,000 steps, and after every
step the total weight norm rescaled to its value at init (norm_constraint=init). alpha takes their 21
values 10^(-1 ... 1). 3 seeds (their notebook trains one).

Not expressible yet: they validate on MNIST's 10,000 test images; grokscan validates on every image not
trained on (69,000). Their code has no accuracy threshold; 0.9 is grokscan's choice here. Needs the MNIST
files under $GROKSCAN_DATA (grokscan never downloads).
CPU size (the bundled digits, no download): --set task=digits --set frac=0.5
--set steps=4000 --set batch_size=100 --set "alpha=[0.3,1.0,3.0,10.0]"
"""

from ray import tune

param_space = {
    "task": "mnist",
    "frac": 1000 / 70000,
    "model": "mlp",
    "width": 200,
    "depth": 2,
    "activation": "relu",
    "loss": "mse",
    "optimizer": "adamw",
    "lr": 1e-3,
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    "weight_decay": 0.0,
    "warmup": 0,
    "batch_size": 100,
    "norm_constraint": "init",
    "steps": 10000,
    "eval_every": 50,
    "threshold": 0.9,
    "alpha": tune.grid_search([10 ** (-1 + k / 10) for k in range(21)]),
    "seed": tune.grid_search([0, 1, 2]),
}
