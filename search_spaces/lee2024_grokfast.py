"""Lee et al. 2024, "Grokfast: accelerated grokking by amplifying slow gradients": the algorithmic-data
runs (x*y mod 97) at their code's settings (ironjr/grokfast main.py and README.md, commit 93b2248;
tests/test_presets.py checks each value against file and line).

Adam (L2 weight decay, as torch.optim.Adam) lr 1e-3, betas (0.9, 0.98), 10-step linear warmup, minibatches
of 512, half of the table for training, 300,000 steps, and their transformer (main.py:15-66): 2 layers of
width 128 with 4 heads and a GELU MLP of 4 x 128, the residual stream normalized before attention
(layernorm=pre_stream) with a final LayerNorm, biases in attention and MLP (biases=all), learned positions,
inputs "x op y =" (input_format=x_op_y). Their three runs are grid points here: the baseline (no filter,
weight decay 0), Grokfast-EMA (alpha 0.98, lambda 2, weight decay 0.005) and Grokfast-MA (window 100, lambda
5, weight decay 0.01); the grid crosses each filter with each of the three weight decays, so every filter is
also compared at the others' decay. 3 seeds. Their README reports steps to 95% validation accuracy: baseline
39,890, Grokfast-MA 790, Grokfast-EMA 910 (`--threshold 0.95` after a run at threshold 0.99).

Not expressible yet: their init (PyTorch's defaults) and softmax over all 99 tokens; their table leaves
out y = 0 (97 x 96 rows), grokscan's x*y has all 97 x 97; the last partial minibatch of an epoch
(grokscan drops it).
CPU size (an MLP in place of the transformer): --set p=59 --set model=mlp
--set width=128 --set depth=1 --set steps=6000 --set eval_every=50
"""

from ray import tune

param_space = {
    "task": "x*y",
    "p": 97,
    "frac": 0.5,
    "model": "transformer",
    "width": 128,
    "depth": 2,
    "heads": 4,
    "d_mlp": 512,
    "activation": "gelu",
    "layernorm": "pre_stream",
    "biases": "all",
    "input_format": "x_op_y",
    "optimizer": "adam",
    "lr": 1e-3,
    "beta1": 0.9,
    "beta2": 0.98,
    "warmup": 10,
    "batch_size": 512,
    "grokfast_alpha": 0.98,
    "grokfast_lamb": 2.0,
    "grokfast_window": 100,
    "grokfast_ma_lamb": 5.0,
    "steps": 300000,
    "eval_every": 500,
    "grad_filter": tune.grid_search(["none", "grokfast", "grokfast_ma"]),
    "weight_decay": tune.grid_search([0.0, 0.005, 0.01]),
    "seed": tune.grid_search([0, 1, 2]),
}
