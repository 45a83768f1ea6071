"""Adam's eps against a collapsing run: how much of its update eps takes away.

    python benchmarks/adam_eps_stall.py [--steps 2000] [--every 500]

Trains the softmax_collapse.py setting without weight decay (x+y mod 59, frac 0.6, MLP width 64, AdamW lr
3e-3) with grokscan's Pack for each (model dtype, loss dtype, eps) below and prints, at every `--every`
steps, the training loss, the median over parameters of sqrt(v_hat) (Adam's bias-corrected second moment)
and the update's size against the same update without eps, |m_hat / (sqrt(v_hat) + eps)| summed over
parameters / |m_hat / sqrt(v_hat)| summed: 1 means eps does nothing, 0.004 that the step is 0.4% of what the
gradient asks for. Not a speed benchmark: it backs RESULTS.md's reading of the eps 1e-8 float64 runs.
"""

from __future__ import annotations

import argparse
import platform

import torch

from grokscan.config import RunConfig
from grokscan.engine.loop import _cpu_mode
from grokscan.engine.pack import Pack

SETTINGS = (("float64", None, 1e-8), ("float64", None, 1e-25), ("float32", "float64", 1e-25))


def eps_share(pack: Pack) -> tuple[float, float]:
    """(median sqrt(v_hat), |update with eps| / |update without eps|) of the pack's only member."""
    state, h = pack.opt.state, pack.opt.h
    m_hat = state["m"] / (1 - state["beta1_t"])
    root = (state["v"] / (1 - state["beta2_t"])).sqrt()
    with_eps = (m_hat / (root + h.eps)).abs().sum()
    without = (m_hat / root.clamp(min=torch.finfo(root.dtype).tiny)).abs().sum()
    return float(root.median()), float(with_eps / without)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--every", type=int, default=500)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, CPU, 1 thread")
    names = ("dtype", "loss_dtype", "eps", "step", "train loss", "sqrt(v_hat)", "eps share")
    print(" ".join(f"{n:>{w}}" for n, w in zip(names, (8, 10, 6, 6, 11, 12, 10), strict=True)))
    for dtype, loss_dtype, eps in SETTINGS:
        cfg = RunConfig(
            p=59, frac=0.6, lr=3e-3, weight_decay=0.0, dtype=dtype, loss_dtype=loss_dtype, eps=eps
        )
        with _cpu_mode(torch.device("cpu")), torch.no_grad():
            pack = Pack([cfg], torch.device("cpu"))
            for step in range(1, args.steps + 1):
                with torch.enable_grad():
                    pack.train_step(step)
                if step % args.every == 0:
                    train_loss = float(pack.evaluate()[0, pack.columns.index("train_loss")])
                    root, share = eps_share(pack)
                    row = f"{dtype:>8} {loss_dtype or '-':>10} {eps:>6.0e} {step:>6} {train_loss:>11.2e}"
                    print(f"{row} {root:>12.2e} {share:>10.4f}")


if __name__ == "__main__":
    main()
