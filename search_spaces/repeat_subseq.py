"""Finite vs infinite data on repeated subsequences: training examples x weight decay, plus infinite data.

Nanda & Lieberum 2022 ("A Mechanistic Interpretability Analysis of Grokking"): a 2-layer attention-only
transformer predicting the repeat of a subsequence (an induction head) has a phase change with infinite
data, and groks with 512 training examples. Here, sized for 2 CPU cores: vocabulary 32, 12 distinct
tokens then a repeat of 6 of them (5 answer positions), d_model 32 with 2 heads, lr 3e-3, 2,000 steps.
The infinite-data runs train on a fresh batch of 512 examples per step (train_size does not apply to
them: the grid keeps one per weight decay). `grokscan plot DIR --kind positions` draws the loss per answer
position. 485 s on 2 CPU cores shared with other work (RESULTS.md, section 6).
The source gives no model width or budget; a larger model: --set width=128 --set heads=4 --set steps=10000.
"""

from ray import tune

param_space = {
    "task": "repeat_subseq",
    "model": "transformer",
    "depth": 2,
    "d_mlp": 0,
    "width": 32,
    "heads": 2,
    "lr": 3e-3,
    "steps": 2000,
    "regime": tune.grid_search(["finite", "infinite"]),
    "train_size": tune.grid_search([128, 256, 512, 1024]),
    "weight_decay": tune.grid_search([0.0, 1.0]),
}
