"""Stage 1 of search_spaces/tickets.py: the dense run the Grokking Tickets are pruned from, stored with its
final weights. The default MLP on x+y mod 67 (Minegishi et al.'s p, gouki510/Grokking-Tickets
config/config_pruning.py) at frac 0.5 and weight decay 1, so that it groks within the 4000-step budget and
stops a few evals after (its final weights are those of a generalized net, which the ticket needs)."""

name = "tickets_parents"
record = {"weights": ["final"]}
param_space = {"task": "x+y", "p": 67, "frac": 0.5, "weight_decay": 1.0, "seed": 0, "steps": 4000}
