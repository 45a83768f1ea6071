"""Finite vs infinite data on 3-digit addition: training examples x weight decay, plus the infinite-data runs.

Nanda & Lieberum 2022 ("A Mechanistic Interpretability Analysis of Grokking"): a 1-layer transformer on
5-digit addition has a phase change per answer digit even with infinite data, and with 700 training
examples and weight decay it groks (train loss near 3e-8 while test loss sits at 0.2, then drops). Here,
sized for 2 CPU cores: 3 digits, d_model 64, 4,000 steps. The infinite-data runs (a fresh batch of 700
examples per step; train_size does not apply to them, so the grid keeps one per weight decay) show the
per-digit phase change with no gap between fitting and generalizing; the finite runs memorize with few
examples or no weight decay and grok in between. `grokscan plot DIR --kind positions` draws the loss per
digit. 449 s on 2 CPU cores shared with other work (RESULTS.md, section 6).
Closer to the source (5 digits, 700 examples; it gives no model width or budget): --set n_digits=5
--set width=128 --set steps=30000 --set "train_size=[350,700,1400,2800]".
"""

from ray import tune

param_space = {
    "task": "add_digits",
    "n_digits": 3,
    "model": "transformer",
    "width": 64,
    "lr": 1e-3,
    "steps": 4000,
    "regime": tune.grid_search(["finite", "infinite"]),
    "train_size": tune.grid_search([300, 450, 600]),
    "weight_decay": tune.grid_search([0.0, 1.0, 3.0]),
}
