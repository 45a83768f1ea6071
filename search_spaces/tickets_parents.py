"""Stage 1 of search_spaces/tickets.py: the dense run the Grokking Tickets are pruned from, stored with its
final weights. The default MLP on x+y mod 67 (Minegishi et al.'s p, gouki510/Grokking-Tickets
config/config_pruning.py) at frac 0.5 and weight decay 1: it groks at about step 3,500 and trains on to
step 8,000 (patience 160 evals, the whole budget), so that its final weights are those of a net trained
well past generalization, as Minegishi et al. prune theirs; about a minute on one CPU core."""

name = "tickets_parents"
record = {"weights": ["final"]}
param_space = {
    "task": "x+y",
    "p": 67,
    "frac": 0.5,
    "weight_decay": 1.0,
    "seed": 0,
    "steps": 8000,
    "patience": 160,
}
