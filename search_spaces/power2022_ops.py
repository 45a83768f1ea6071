"""Power et al. 2022, "Grokking: generalization beyond overfitting on small algorithmic datasets"
(Figure 1, right): the training fraction each operation needs to reach 99% validation accuracy within
10^5 updates, at their settings (openai/grok grok/training.py, grok/transformer.py and grok/data.py,
commit 3d64b1d; tests/test_presets.py checks each value against file and line).

Their transformer: 2 layers, d_model 128, 4 heads, a ReLU MLP of 4 x 128, LayerNorm after each residual
sum, no biases, sinusoidal positions, inputs "<eos> x op y =" and the answer read at "=". AdamW
(decoupled decay) lr 1e-3, weight decay 1, betas (0.9, 0.98), eps 1e-8, 10-step linear warmup, minibatches
of min(512, half the training set), 10^5 updates, mod 97. The paper gives the optimizer (Appendix A.1,
quoted in ironjr/grokfast main.py:117-118, 126), the batch rule and the budget; the code's own defaults
agree (training.py:79-85, 103, 108, 225-226; data.py:434-435; training.py:846) except weight decay, 0 at
training.py:109. Operations: the binary ones of grok/data.py that grokscan has, S5 in openai's order. The
fractions 0.1 ... 0.9 are grokscan's grid: the paper does not list the ones it swept. 3 seeds.

Not expressible yet: their init (PyTorch's defaults), their softmax over the whole token vocabulary rather
than the answers, the second target (the <eos> after the answer, training.py:306-314), and the last
partial minibatch of an epoch (grokscan drops it).
CPU size (4 operations mod 23, width 64): --set p=23 --set width=64 --set d_mlp=256 --set steps=10000
--set "task=['x+y','x-y','x*y','x/y']" --set "frac=[0.3,0.5,0.7]"
"""

from ray import tune

param_space = {
    "p": 97,
    "model": "transformer",
    "width": 128,
    "depth": 2,
    "heads": 4,
    "d_mlp": 512,
    "activation": "relu",
    "layernorm": "post",
    "biases": "off",
    "pos_encoding": "sinusoidal",
    "input_format": "eos_x_op_y",
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 1.0,
    "beta1": 0.9,
    "beta2": 0.98,
    "eps": 1e-8,
    "warmup": 10,
    "batch_rule": "half_up_to_512",
    "dtype": "float32",
    "steps": 100000,
    "eval_every": 100,
    "threshold": 0.99,
    "task": tune.grid_search(
        [
            *("x+y", "x-y", "x*y", "x/y", "x^2+y^2", "x^2+xy+y^2", "x^2+xy+y^2+x", "x^3+xy", "x^3+xy^2+y"),
            *("mix", "s5_openai", "s5conj_openai", "s5aba"),
        ]
    ),
    "frac": tune.grid_search([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]),
    "seed": tune.grid_search([0, 1, 2]),
}
