"""The paper presets (search_spaces/<paper>.py) against the values in each paper's reference code, cited
by repository, commit, file and line; and every preset, at paper scale and at its documented CPU size,
passes `grokscan run --dry-run` (validated and planned, nothing trained)."""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from grokscan.cli import main
from grokscan.engine.optim import EMBED_FIELDS
from grokscan.sweep.space import load_space

SPACES = Path(__file__).parent.parent / "search_spaces"

# Each preset: (fields every run has, {grid field: its values}); comments cite the reference code.
REFERENCE = {
    # openai/grok @ 3d64b1d (grok/training.py unless named); the paper's Appendix A.1 for weight decay 1
    "power2022_ops": (
        dict(
            model="transformer",
            depth=2,  # :87 --n_layers 2
            heads=4,  # :88 --n_heads 4
            width=128,  # :89 --d_model 128
            d_mlp=512,  # grok/transformer.py:181, 187 d_ff = 4 * d_model
            activation="relu",  # :92 --non_linearity relu
            layernorm="post",  # grok/transformer.py:230, 234 LayerNorm(x + sublayer(x))
            biases="off",  # grok/transformer.py:89-91, 142, 192, 194 bias=False
            pos_encoding="sinusoidal",  # grok/transformer.py:325-339
            input_format="eos_x_op_y",  # grok/data.py:250, 357 "<eos> x op y = c <eos>"
            optimizer="adamw",  # :223 CustomAdamW, :947-948 p *= 1 - lr * wd ("to_zero": decoupled)
            lr=1e-3,  # :108 --max_lr 1e-3
            weight_decay=1.0,  # Appendix A.1 (ironjr/grokfast main.py:117-118 quotes it); :109 default 0
            beta1=0.9,  # :225 betas=(0.9, 0.98)
            beta2=0.98,
            eps=1e-8,  # :226
            warmup=10,  # :103 --warmup_steps 10; :200-203 linear
            dtype="float32",
            steps=100000,  # :846 --max_steps 100000
            threshold=0.99,  # Figure 1 (right): 99% validation accuracy
        ),
        dict(
            # grok/data.py:19-40 VALID_OPERATORS, the binary ones grokscan has; S5 in openai's operand order
            task=["x+y", "x-y", "x*y", "x/y", "x^2+y^2", "x^2+xy+y^2", "x^2+xy+y^2+x", "x^3+xy", "x^3+xy^2+y"]
            + ["mix", "s5_openai", "s5conj_openai", "s5aba"],
            frac=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        ),
    ),
    # LucasPrietoAl/grokking-at-the-edge-of-numerical-stability @ 0cc9e8d
    "prieto2025_collapse": (
        dict(
            task="x+y",  # utils.py:233 --binary_operation default "add_mod"
            p=113,  # utils.py:215 --modulo default 113
            mlp_input="onehot",  # datasets.py:56-59 cat(one_hot(x), one_hot(y)); utils.py:186 input_size * 2
            biases="off",  # utils.py:186-187 MLP(..., bias=False)
            width=200,  # utils.py:206 --hidden_sizes default [200, 200]
            depth=2,  # utils.py:206 (two hidden layers)
            activation="relu",  # models.py:13 nn.ReLU()
            optimizer="adamw",  # utils.py:221 --optimizer default "AdamW"
            lr=5e-4,  # run_main_experiments.sh:59-69 (Figure 2) --lr 0.0005
            beta1=0.9,  # utils.py:194 betas=(0.9, args.beta2)
            beta2=0.99,  # utils.py:289 --beta2 default 0.99
            eps=1e-25,  # utils.py:291 --adam_epsilon default 1e-25, passed at utils.py:194
            weight_decay=0.0,  # utils.py:275 --weight_decay default 0
            warmup=0,  # utils.py:278 --use_lr_scheduler default False
            batch_size=None,  # utils.py:242 --full_batch default True
            dtype="float32",  # utils.py:272 --train_precision default 32
            steps=20000,  # run_main_experiments.sh:59-69 --num_epochs 20000 (full batch: one step each)
        ),
        # run_main_experiments.sh:59-69 --train_fraction 0.4 / 0.6 / 0.7 x --softmax_precision 32 / 64,
        # where 64 casts the float32 logits to float64 before log_softmax (utils.py:23-28).
        dict(frac=[0.4, 0.6, 0.7], loss_dtype=[None, "float64"]),
    ),
    # ironjr/grokfast @ 93b2248
    "lee2024_grokfast": (
        dict(
            task="x*y",  # main.py:82 result = x * y % p
            p=97,  # main.py:245 --p default 97
            frac=0.5,  # main.py:114 split(data.shape[1] // 2)
            model="transformer",
            width=128,  # main.py:105-106 Decoder(dim=128, num_layers=2, num_heads=4)
            depth=2,
            heads=4,
            d_mlp=512,  # main.py:26 nn.Linear(dim, dim * 4)
            activation="gelu",  # main.py:27 nn.GELU()
            layernorm="pre_stream",  # main.py:38-42 x = ln_1(x); x = x + attn(x); x + mlp(ln_2(x)); :59 ln_f
            biases="all",  # main.py:23-28 nn.MultiheadAttention and nn.Linear keep their biases
            input_format="x_op_y",  # main.py:85-86 [x, op, y, eq, result], model reads input[:-1] (:152)
            optimizer="adam",  # main.py:252 --optimizer default "Adam" (torch.optim.Adam: L2 decay)
            lr=1e-3,  # main.py:248
            beta1=0.9,  # main.py:249
            beta2=0.98,  # main.py:250
            warmup=10,  # main.py:128 lambda update: 1 if update > 10 else update / 10
            batch_size=512,  # main.py:247
            steps=300000,  # main.py:246 --budget default 3e5
        ),
        # The baseline (main.py:251 --weight_decay default 0; README.md:182), Grokfast-MA at weight decay 0.01
        # (README.md:183) and Grokfast-EMA at 0.005 (README.md:195), crossed.
        dict(grad_filter=["none", "grokfast", "grokfast_ma"], weight_decay=[0.0, 0.005, 0.01]),
    ),
    # mechanistic-interpretability-grokking/progress-measures-paper @ 23d2c64, transformers.py
    "nanda2023_frac": (
        dict(
            task="x+y",  # :33 fn_name "add"
            p=113,  # :31
            model="transformer",
            width=128,  # :32 d_model
            depth=1,  # :46 num_layers
            heads=4,  # :51 num_heads
            d_mlp=512,  # :50 4 * d_model
            activation="relu",  # :53 act_type "ReLU"
            optimizer="adamw",  # :470 optim.AdamW
            lr=1e-3,  # :29
            weight_decay=1.0,  # :30
            beta1=0.9,  # :470 betas=(0.9, 0.98)
            beta2=0.98,
            warmup=10,  # :471 lambda step: min(step/10, 1)
            batch_size=None,  # :47 batch_style "full"
            steps=50000,  # :35 num_epochs (full batch: one step each)
        ),
        # saved_runs/mod_addition_frac_train_sweep.pth: frac_trains of their sweep, as saved there.
        dict(frac=[0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.28, 0.25]),
    ),
    # KindXiaoming/Omnigrok @ 3a0a573, mnist/landscape/mnist-landscape.ipynb (cell:line)
    "omnigrok_alpha": (
        dict(
            task="mnist",
            frac=1000 / 70000,  # 1:2 data size 1000 of data_sizes; grokscan's table holds 70,000 images
            width=200,  # 0:67
            depth=2,  # 0:68-75 Linear(784, w), ReLU, Linear(w, w), ReLU, Linear(w, 10)
            activation="relu",
            loss="mse",  # 0:80 nn.MSELoss() on one_hots[label]
            optimizer="adamw",  # 0:81 AdamW(lr=1e-3, weight_decay=0.0): torch's betas and eps
            lr=1e-3,
            beta1=0.9,
            beta2=0.999,
            eps=1e-8,
            weight_decay=0.0,
            warmup=0,
            batch_size=100,  # 0:54 DataLoader(batch_size=100, shuffle=True)
            norm_constraint="init",  # 0:56-64, 77-78, 106-108 rescale by sqrt(L2_ / L2_new) each step
            steps=10000,  # 0:15
        ),
        # 1:4 alphas; 0:77 rescale(mlp, alpha); seeds are grokscan's (the notebook trains one)
        dict(alpha=list(10 ** np.linspace(-1, 1, num=21)), seed=[0, 1, 2]),
    ),
    # ejmichaud/grokking-squared @ 0229df9, phase_diagram_plot/phase_diagram-classification.ipynb (cell:line)
    "liu2022_phases": (
        dict(
            task="x+y",
            p=10,  # 1:31
            frac=45 / 55,  # 1:1 train_num = 45 of the 55 unordered pairs
            mlp_input="embed_sum",  # 1:199-203 latent[x] + latent[y] into the decoder
            embed_dim=1,  # 1:33 latent_dim = 1
            width=200,  # 1:180-184 NET(w=200): three Linear layers
            depth=2,
            activation="tanh",  # 1:187 f = torch.nn.Tanh()
            loss="ce",  # 1:266 CE loss
            optimizer="adamw",  # 1:248 AdamW(model.dec.parameters(), lr=eta2, weight_decay=wd2)
            beta1=0.9,  # 1:248 torch's AdamW defaults: betas (0.9, 0.999), eps 1e-8
            beta2=0.999,
            eps=1e-8,
            embed_lr=1e-3,  # 1:18 eta1 = 1e-3; 1:247 Adam({latent}, lr=eta1): no decay
            embed_weight_decay=0.0,
            warmup=0,
            batch_size=None,  # 1:256-266 the whole training set each step
            steps=100000,  # 2:3 epochs = [1e5]
            threshold=0.9,  # 1:286, 1:291 acc >= 0.9
        ),
        dict(
            lr=list(10 ** np.linspace(-4, -2, num=11)),  # 2:0 dec_lrs
            weight_decay=[float(w) for w in np.arange(0, 22, 2)],  # 2:1 wds
            seed=[0, 1, 2],  # grokscan's (the notebook trains seed 6 only, 1:0)
        ),
    ),
}


def test_power2022_modulus_and_batches() -> None:
    """Mod 97 (grok/data.py:43 MODULUS) for every operation but S5's, and batches of min(512, ceil(N / 2))
    (grok/data.py:434-435; batchsize_hint 0 is the default, training.py:79-85)."""
    sweep = load_space(SPACES / "power2022_ops.py")
    for cfg in sweep.configs:
        assert cfg.p == (None if cfg.task.startswith("s5") else 97), cfg.task
        assert cfg.batch_size == min(512, math.ceil(cfg.n_train / 2)), (cfg.task, cfg.frac)
    assert {c.batch_size for c in sweep.configs if c.task == "x+y"} == {471, 512}  # 0.1 * 9409 = 941 rows


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12)
    return a == b


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_preset_matches_the_reference_code(name: str) -> None:
    fixed, grid = REFERENCE[name]
    sweep = load_space(SPACES / f"{name}.py")
    for cfg in sweep.configs:
        for key, want in fixed.items():
            got = getattr(cfg, key)
            if key in EMBED_FIELDS and got is None:  # stored None: the run's own lr / weight decay
                got = getattr(cfg, EMBED_FIELDS[key])
            assert _same(got, want), (name, key, got, want)
    for key, want in grid.items():
        got = sorted({getattr(c, key) for c in sweep.configs}, key=repr)
        assert len(got) == len(want) and all(any(_same(g, w) for g in got) for w in want), (
            name,
            key,
            got,
            want,
        )


def _cpu_size(path: Path) -> list[str]:
    """The `--set` flags of the "CPU size" line(s) of a preset's docstring."""
    text = path.read_text().split('"""')[1]
    tokens = shlex.split(re.search(r"CPU size[^:]*:(.*)", text, re.S).group(1))
    return [token for pair in zip(tokens[::2], tokens[1::2], strict=True) for token in pair]


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_preset_dry_runs_at_paper_and_cpu_size(name: str, tmp_path, capsys) -> None:
    path = SPACES / f"{name}.py"
    cpu = _cpu_size(path)
    assert cpu and cpu[::2] == ["--set"] * (len(cpu) // 2)
    for flags in ([], cpu):
        assert main(["run", str(path), "--dry-run", "--storage", str(tmp_path), *flags]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"{name}: ") and " runs over " in out
    assert not any(tmp_path.iterdir())  # a dry run writes nothing
