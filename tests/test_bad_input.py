"""Every kind of bad input: one error line naming the problem and the fix, exit code 2, nothing written."""

from __future__ import annotations

import textwrap

import pytest

from grokscan.cli import main
from grokscan.results.store import Store

GRID = "from ray import tune\nfrom ray.tune.search.optuna import OptunaSearch\n"
GRID += "from grokscan.sweep.adaptive import CriticalFraction\n"
OPTUNA = "search_alg = OptunaSearch(seed=0)\nnum_samples = 4\n"
LR = '"lr": tune.loguniform(1e-4, 1e-2)'
BISECT = "search_alg = CriticalFraction()\n"
# case: (search-space file body, extra CLI arguments, text the error must contain)
CASES = {
    "syntax_error": ("param_space = {", [], "syntax error"),
    "import_error": ("import not_a_module_xyz\nparam_space = {}", [], "importing the file failed"),
    "missing_param_space": ("import math", [], "no `param_space`"),
    "param_space_not_dict": ("param_space = [1]", [], "non-empty dict"),
    "unknown_key": ('param_space = {"weight_decy": 1.0}', [], "did you mean 'weight_decay'"),
    "unknown_setting": ('param_spaces = {}\nparam_space = {"p": 7}', [], "unknown setting 'param_spaces'"),
    "wrong_type": ('param_space = {"p": "97"}', [], "'p' = '97'"),
    "frac_out_of_range": (
        'param_space = {"frac": tune.grid_search([0.5, 1.2])}',
        [],
        "strictly between 0 and 1",
    ),
    "frac_leaves_no_validation": ('param_space = {"p": 3, "frac": 0.95}', [], "need >= 1 on each side"),
    "p_not_prime_for_division": ('param_space = {"task": "x/y", "p": 96}', [], "must be prime"),
    "negative_lr": ('param_space = {"lr": -0.1}', [], "'lr'"),
    "negative_weight_decay": (
        'param_space = {"weight_decay": tune.grid_search([1.0, -1.0])}',
        [],
        "'weight_decay'",
    ),
    "empty_grid": ('param_space = {"seed": tune.grid_search([])}', [], "empty grid"),
    "list_without_grid_search": ('param_space = {"seed": [0, 1]}', [], "tune.grid_search"),
    "sampled_domain": ('param_space = {"lr": tune.loguniform(1e-4, 1e-2)}', [], "sampled domain"),
    "unknown_task": ('param_space = {"task": "x+z"}', [], "did you mean 'x+y'"),
    "unknown_model": ('param_space = {"model": "transfromer"}', [], "did you mean 'transformer'"),
    "unknown_optimizer": ('param_space = {"optimizer": "adamw2"}', [], "did you mean 'adamw'"),
    "unknown_loss": ('param_space = {"loss": "stablemx"}', [], "did you mean 'stablemax'"),
    "unknown_dtype": ('param_space = {"dtype": "float16"}', [], "'dtype'"),
    "unknown_grad_filter": ('param_space = {"grad_filter": "grokfst"}', [], "did you mean 'grokfast'"),
    "steps_not_multiple_of_eval": ('param_space = {"steps": 1001}', [], "multiple of eval_every"),
    "batch_larger_than_train_set": ('param_space = {"p": 7, "batch_size": 1000}', [], "'batch_size'"),
    "transformer_on_pixels": ('param_space = {"task": "digits", "model": "transformer"}', [], "pixel inputs"),
    "heads_not_dividing_width": ('param_space = {"model": "transformer", "heads": 3}', [], "divide width"),
    "unknown_layernorm": ('param_space = {"model": "transformer", "layernorm": "pst"}', [], "'post', 'pre'"),
    "unknown_mlp_input": ('param_space = {"mlp_input": "one_hot"}', [], "'embed_sum', 'onehot'"),
    "onehot_on_pixels": ('param_space = {"task": "digits", "mlp_input": "onehot"}', [], "pixel inputs"),
    "mlp_biases_typo": ('param_space = {"biases": "of"}', [], "'on', 'off'"),
    "operator_token_on_parity": (
        'param_space = {"model": "transformer", "task": "parity", "input_format": "eos_x_op_y"}',
        [],
        "needs a binary operation",
    ),
    "batch_rule_and_batch_size": (
        'param_space = {"batch_rule": "half_up_to_512", "batch_size": 64}',
        [],
        "'batch_size' = 64 is invalid: must be None when batch_rule sets it",
    ),
    "label_noise_one": ('param_space = {"label_noise": 1.0}', [], "'label_noise'"),
    "parity_table_too_big": ('param_space = {"task": "parity", "n_samples": None}', [], "n_bits <= 20"),
    "bad_resources": ('resources = {"tpu": 1}\nparam_space = {"p": 7}', [], "unknown key 'tpu'"),
    "gpus_over_one_in_file": (
        'resources = {"gpu": 2}\nparam_space = {"p": 7}',
        [],
        "resources['gpu'] = 2: a trial trains on one GPU; allowed: 0 (CPU) to 1",
    ),
    "bad_pack_size_setting": ('pack_size = 0\nparam_space = {"p": 7}', [], "pack_size = 0"),
    "bad_sweep_name": ('name = "a b"\nparam_space = {"p": 7}', [], "name = 'a b'"),
    "huge_grid_unconfirmed": (
        'param_space = {"p": 7, "seed": tune.grid_search(list(range(10001)))}',
        [],
        "--yes",
    ),
    "override_without_value": ('param_space = {"p": 7}', ["--set", "steps"], "key=value"),
    "override_unknown_key": (
        'param_space = {"p": 7}',
        ["--set", "optimiser=sgd"],
        "did you mean 'optimizer'",
    ),
    "override_bad_value": ('param_space = {"p": 7}', ["--set", "frac=1.5"], "strictly between 0 and 1"),
    "pack_size_flag": ('param_space = {"p": 7}', ["--pack-size", "0"], "--pack-size 0"),
    "max_concurrent_flag": ('param_space = {"p": 7}', ["--max-concurrent", "-2"], "--max-concurrent -2"),
    "gpus_per_trial_flag": ('param_space = {"p": 7}', ["--gpus-per-trial", "-1"], "--gpus-per-trial"),
    "gpus_per_trial_over_one": (
        'param_space = {"p": 7}',
        ["--gpus-per-trial", "2"],
        "--gpus-per-trial 2: a trial trains on one GPU; allowed: 0 (CPU) to 1",
    ),
    "ray_address_unreachable": (
        'param_space = {"p": 7}',
        ["--address", "127.0.0.1:1"],
        "no Ray cluster answers",
    ),
    "ray_address_malformed": ('param_space = {"p": 7}', ["--address", "headnode"], "expected host:port"),
    # adaptive sweeps (search_alg)
    "grid_with_optuna": (
        OPTUNA + "param_space = {" + LR + ', "seed": tune.grid_search([0, 1])}',
        [],
        "Optuna cannot convert grid_search",
    ),
    "optuna_without_num_samples": (
        "search_alg = OptunaSearch()\nparam_space = {" + LR + "}",
        [],
        "needs num_samples",
    ),
    "optuna_without_domains": (OPTUNA + 'param_space = {"p": 7}', [], "needs sampled domains"),
    "unknown_metric": (OPTUNA + 'metric = "val_loss"\nparam_space = {' + LR + "}", [], "allowed: step_gen"),
    "bad_mode": (OPTUNA + 'mode = "minimize"\nparam_space = {' + LR + "}", [], "mode = 'minimize'"),
    "domain_out_of_range": (OPTUNA + 'param_space = {"frac": tune.uniform(0.5, 1.5)}', [], "'frac' = 1.5"),
    "choice_with_bad_value": (
        OPTUNA + 'param_space = {"optimizer": tune.choice(["adamw", "adagrad"])}',
        [],
        "'optimizer'",
    ),
    "num_samples_without_search_alg": ('num_samples = 8\nparam_space = {"p": 7}', [], "needs a search_alg"),
    "search_alg_not_a_searcher": (
        'search_alg = "optuna"\nparam_space = {' + LR + "}",
        [],
        "expected a Ray Tune searcher",
    ),
    "critical_fraction_samples_other_key": (
        BISECT + 'param_space = {"frac": tune.uniform(0.2, 0.8), ' + LR + "}",
        [],
        "CriticalFraction bisects param_space['frac']",
    ),
    "critical_fraction_with_num_samples": (
        BISECT + 'num_samples = 3\nparam_space = {"frac": tune.uniform(0.2, 0.8)}',
        [],
        "num_samples is not a CriticalFraction setting",
    ),
    "critical_fraction_bad_tol": (
        'search_alg = CriticalFraction(tol=0.7)\nparam_space = {"p": 7}',
        [],
        "tol must be a number in (0, 0.5)",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, case):
    body, argv, expected = CASES[case]
    space = tmp_path / "space.py"
    space.write_text(GRID + textwrap.dedent(body))
    storage = tmp_path / "results"
    assert main(["run", str(space), "--storage", str(storage), *argv]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and err.startswith("grokscan: ")
    assert not storage.exists()


def test_files_that_are_not_search_spaces(tmp_path, capsys):
    other = tmp_path / "space.txt"
    other.write_text("param_space = {}")
    for path, expected in ((tmp_path / "nope.py", "no such search-space file"), (other, "ending in .py")):
        assert main(["run", str(path), "--storage", str(tmp_path / "r")]) == 2
        assert expected in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_results_path_not_writable(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    space = tmp_path / "space.py"
    space.write_text('param_space = {"p": 7}')
    assert main(["run", str(space), "--storage", str(blocker / "results")]) == 2
    assert "not a writable directory" in capsys.readouterr().err


def test_corrupt_results_directory_is_named(tmp_path, capsys):
    Store(str(tmp_path)).write("s", errors=[])  # nothing: the folder stays empty
    folder = tmp_path / "runs" / "sweep=s"
    folder.mkdir(parents=True)
    (folder / "part-bad.parquet").write_bytes(b"PAR1 truncated")
    assert main(["ls", str(tmp_path)]) == 2
    assert "part-bad.parquet" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="part-bad"):
        assert main(["ls", str(tmp_path), "--skip-corrupt"]) == 0
