"""The paper comparisons that benchmarks/reproduce.py renders into RESULTS.md: per preset, the paper's claim
and published result (with its source), the cells grokscan compares, and the direction the paper predicts.
Published numbers are quoted from the papers or computed from the authors' own saved runs as each
`published` text says; everything under "grokscan" in RESULTS.md is computed from stored runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Cell = Any  # a value of the section's `group` column, or {column: value} naming one cell


@dataclass(frozen=True)
class Section:
    """One paper's comparison.

    Cells are the groups of ok runs by (*by, *also, group). `pairs`: (cell expected faster, cell expected
    slower), compared within each value of `by`. `threshold`: the analysis accuracy of step_gen (None: the
    runs'). `measure` = (curve column, "<" or ">", value): the step compared is the first eval with that
    column below / above the value instead of step_gen. `extra`: further `--set` flag lists, each trained
    as its own `grokscan run` of the preset on top of the size's flags (arms outside the paper's grid).
    `paper`: the published step per value of `group`, shown beside grokscan's."""

    preset: str
    title: str
    claim: str
    published: str
    group: str
    pairs: tuple[tuple[Cell, Cell], ...]
    by: tuple[str, ...] = ()
    also: tuple[str, ...] = ()
    threshold: float | None = None
    measure: tuple[str, str, float] | None = None
    extra: tuple[tuple[str, ...], ...] = ()
    paper: tuple[tuple[Any, int], ...] = ()
    note: str = ""


def _lee(grad_filter: str, weight_decay: float, optimizer: str = "adam") -> dict:
    return {"optimizer": optimizer, "weight_decay": weight_decay, "grad_filter": grad_filter}


SECTIONS = (
    Section(
        "prieto2025_collapse",
        "Prieto et al. 2025: a float64 loss delays softmax collapse",
        "Without weight decay a float32 softmax cross-entropy reaches exactly zero loss on training rows "
        "(softmax collapse) and stops learning from them; computing the loss in float64 delays the "
        "collapse.",
        "Fig. 2 (x+y mod 113, one-hot MLP 200-200 without biases, AdamW lr 5e-4, eps 1e-25, "
        "`--softmax_precision 32 | 64`): curves, no step counts in the text.",
        "loss_dtype",
        ((None, "float64"),),
        by=("frac",),
        measure=("zero_loss_frac", ">", 0.1),
        note="Collapse is measured as the first eval with more than 10% of training rows at exactly zero "
        "loss in the loss's dtype; the last column says whether either arm generalized. Both arms use "
        "Prieto's eps 1e-25: with Adam's usual 1e-8 a run whose loss nears zero has sqrt(v_hat) far below "
        "eps and its update shrinks to a fraction of a percent (`benchmarks/adam_eps_stall.py`), which "
        "stalls training for a reason of its own.",
    ),
    Section(
        "omnigrok_alpha",
        "Liu et al. 2022 (Omnigrok): a large fixed weight norm delays generalization",
        "With the weight norm held at alpha times its init value, alpha near 1 generalizes and a large alpha "
        "does not, or later.",
        "MNIST landscape over alpha and data size (KindXiaoming/Omnigrok mnist/landscape): a figure, no "
        "step counts.",
        "alpha",
        ((1.0, 10.0), (0.3, 10.0)),
    ),
    Section(
        "liu2022_phases",
        "Liu et al. 2022: weight decay turns memorization into generalization",
        "On the (decoder learning rate x weight decay) plane, weight decay 0 memorizes within the budget at "
        "most learning rates, moderate weight decay generalizes (grokking, then comprehension), too much "
        "confuses.",
        "Phase diagram of their classification notebook (ejmichaud/grokking-squared, "
        "phase_diagram-classification.ipynb): a figure over 11 x 11 cells, no step counts.",
        "weight_decay",
        ((6.0, 0.0),),
        by=("lr",),
    ),
    Section(
        "lee2024_grokfast",
        "Lee et al. 2024: Grokfast against their baseline, the same weight decay, and AdamW",
        "Amplifying the slow gradient component (EMA or windowed mean) reaches 95% validation accuracy in "
        "far fewer steps than the same optimizer without it.",
        "ironjr/grokfast README.md:178-179 and 190-191: iterations to 95% validation accuracy, baseline "
        "(Adam, weight decay 0) 39,890, Grokfast-MA (weight decay 0.01) 790, Grokfast-EMA (weight decay "
        "0.005) 910, on their transformer.",
        "grad_filter",
        (
            (_lee("grokfast_ma", 0.01), _lee("none", 0.0)),
            (_lee("grokfast", 0.005), _lee("none", 0.0)),
            (_lee("grokfast_ma", 0.01), _lee("none", 0.01)),
            (_lee("grokfast", 0.005), _lee("none", 0.005)),
            (_lee("grokfast_ma", 0.01), _lee("none", 1.0, "adamw")),
            (_lee("grokfast", 0.005), _lee("none", 1.0, "adamw")),
        ),
        also=("optimizer", "weight_decay"),
        threshold=0.95,
        extra=(("--set", "optimizer=adamw", "--set", "weight_decay=1.0", "--set", "grad_filter=none"),),
        note="Pairs name cells as (optimizer, weight_decay, grad_filter). The first two pairs are Lee et "
        "al.'s comparison (each filter at its own weight decay against the baseline at 0), the next two "
        "the filter alone (same weight decay with and without it). The last arm is not Lee et al.'s: "
        "AdamW with weight decay 1 (grokscan's default, Nanda et al.'s setting), a common grokking "
        "baseline, not tuned for this task.",
    ),
    Section(
        "power2022_ops",
        "Power et al. 2022: symmetric operations need less data",
        "Operations symmetric in their operands (x+y, x*y) generalize from a smaller training fraction "
        "than their asymmetric counterparts (x-y, x/y), with their 2-layer transformer.",
        "Fig. 1 (right): the training fraction each operation needs for 99% validation accuracy within "
        "10^5 updates, mod 97; a figure, no table.",
        "task",
        (("x+y", "x-y"), ("x*y", "x/y")),
        by=("frac",),
    ),
    Section(
        "nanda2023_frac",
        "Nanda et al. 2023: steps to generalize against the training fraction",
        "Less training data, later generalization, growing steeply below half the table.",
        "Their saved fraction sweep (progress-measures-paper saved_runs/mod_addition_frac_train_sweep.pth, "
        "one run per fraction, full batch): first epoch with test loss below 1 (chance: ln 113 = 4.73), "
        "computed from the saved test-loss curves.",
        "frac",
        ((0.7, 0.5), (0.5, 0.4)),
        measure=("val_loss", "<", 1.0),
        paper=((0.95, 123), (0.9, 156), (0.8, 177), (0.7, 129), (0.6, 270), (0.5, 744), (0.4, 2615))
        + ((0.3, 7583), (0.28, 14465), (0.25, 21419)),
    ),
)
