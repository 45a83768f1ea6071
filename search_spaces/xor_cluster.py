"""Benign overfitting, then grokking, on XOR cluster data (Xu et al. 2023): label noise x training rows.

Xu et al.'s setting: Gaussian clusters at +-mu1 (label 0) and +-mu2 (label 1) in d dimensions, a fraction
of training labels flipped, a clean test set; a two-layer ReLU net with a fixed +-1/sqrt(m) output layer
(model relu2) trained by full-batch gradient descent (SGD without momentum on every training row) on the
logistic loss, from a small init. They prove it fits the noisy labels after one step at near-chance test
accuracy and generalizes later. Here: d 2000, ||mu|| 14, 2000 rows of which 100 / 200 / 400 train, 5% /
15% / 25% of those flipped, width 256, lr 1, 300 steps evaluated at every step; step_fit is on the noisy
training labels, step_gen on the clean rest, at 95% ("near-optimal": the clusters are far apart along
mu). Sizes are grokscan's, not the paper's; 9 runs, about a minute on 2 CPU cores."""

from ray import tune

name = "xor_cluster"
param_space = {
    "task": "xor_cluster",
    "n_samples": 2000,
    "dim": 2000,
    "cluster_norm": 14.0,
    "model": "relu2",
    "width": 256,
    "optimizer": "sgd",
    "momentum": 0.0,
    "lr": 1.0,
    "weight_decay": 0.0,
    "warmup": 0,
    "steps": 300,
    "eval_every": 1,
    "threshold": 0.95,
    "patience": 1000,
    "label_noise": tune.grid_search([0.05, 0.15, 0.25]),
    "frac": tune.grid_search([0.05, 0.1, 0.2]),
}
