"""`grokscan run | ls | plot | fit | report | serve | compact | submit | status | logs`.
Exit codes: 0 ok, 1 some runs failed, 2 bad input (`status`: see `grokscan.sweep.jobs`).

Bad input is a `UserError` wherever it is found (space file, flag, storage, Ray address, results): one line
`grokscan: ...` on stderr and exit code 2. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

from grokscan.cli_jobs import JOB_VERBS, job_parsers
from grokscan.config import SEED_FIELDS
from grokscan.errors import UserError
from grokscan.results.phases import DEFAULT_GAP
from grokscan.sweep.preflight import check_address, check_numbers, check_size, check_storage
from grokscan.sweep.record import weights_note
from grokscan.sweep.space import Sweep, load_space

BAD_INPUT, RUNS_FAILED = 2, 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grokscan", description="Phase diagrams of grokking.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("run", help="train every run of a search-space file (skips runs already stored)")
    run.add_argument("space", help="search-space file, e.g. search_spaces/wd_vs_frac.py")
    run.add_argument("--storage", default="results", help="results directory or s3://bucket/prefix")
    run.add_argument(
        "--address", default=None, help="join a Ray cluster ('auto'); default: embedded local Ray"
    )
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a param_space key (a [list] makes a grid), e.g. --set p=113",
    )
    run.add_argument("--gpus-per-trial", type=float, default=None, help="GPU share per trial, e.g. 0.25")
    run.add_argument("--pack-size", type=int, default=None, help="runs per trial (default: from device)")
    run.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: resources)")
    run.add_argument("--dry-run", action="store_true", help="validate, print runs and packs, train nothing")
    run.add_argument("--yes", action="store_true", help="confirm a sweep of more than 10,000 runs")
    run.add_argument(
        "--no-compact", action="store_true", help="keep the fragments as trials wrote them (see `compact`)"
    )
    ls = verbs.add_parser("ls", help="sweeps in a results directory with counts by status and phase")
    ls.add_argument("storage", nargs="?", default="results")
    ls.add_argument("--skip-corrupt", action="store_true", help="skip unreadable fragments with a warning")
    _compact_parser(verbs)
    submit = job_parsers(verbs)
    analysis = _analysis_parsers(verbs)
    verbs_with_phases = [run, ls, submit, *analysis]
    for verb in verbs_with_phases:
        verb.add_argument(
            "--gap",
            type=int,
            default=DEFAULT_GAP,
            help=f"steps from fit to generalization past which a run is 'grokking' (default: {DEFAULT_GAP})",
        )
    for verb in (ls, *analysis):
        verb.add_argument(
            "--threshold",
            type=float,
            default=None,
            help="accuracy at which step_fit / step_gen are taken, recomputed from the stored curves "
            "(e.g. 0.9 as Liu et al. 2022; default: each run's own threshold, 0.99 unless set)",
        )
    return parser


def _analysis_parsers(verbs: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    """`plot`, `fit` and `report`: read a results directory, train nothing."""
    sweep_help = "sweep name (may be left out when the directory holds one sweep)"
    plot = verbs.add_parser("plot", help="draw a phase map, time heatmap, curves or scaling fit as an image")
    fit = verbs.add_parser("fit", help="print the censored exponential fit of step_gen against a column")
    report = verbs.add_parser("report", help="write a self-contained HTML report of a sweep")
    for verb in (plot, fit, report):
        verb.add_argument("storage", metavar="RESULTS_DIR", help="results directory or s3://bucket/prefix")
        verb.add_argument("--sweep", default=None, help=sweep_help)
    plot.add_argument("--x", default=None, help="column on the x axis (default: the first that varies)")
    plot.add_argument("--y", default=None, help="column on the y axis, or grouping the scaling fits")
    plot.add_argument(
        "--kind", choices=("phase", "time", "curves", "scaling", "positions", "tickets"), default="phase"
    )
    plot.add_argument("-o", "--output", default=None, help="image file (default: <sweep>_<kind>.png)")
    fit.add_argument("--x", default="frac", help="numeric column to fit against (default: frac)")
    fit.add_argument("--budget", type=int, default=None, help="steps for '<x> at budget' (default: max run)")
    report.add_argument("-o", "--output", default=None, help="HTML file (default: <sweep>_report.html)")
    serve = verbs.add_parser("serve", help="a live, read-only view of the sweeps in a browser")
    serve.add_argument("storage", metavar="RESULTS_DIR", help="results directory or s3://bucket/prefix")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: the network)")
    serve.add_argument("--port", type=int, default=8050, help="port to listen on (default: 8050)")
    return [plot, fit, report, serve]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    verbs = {"run": _run, "ls": _ls, "plot": _plot, "fit": _fit, "report": _report, "serve": _serve}
    verbs.update(compact=_compact, **JOB_VERBS)
    try:
        if args.gap < 0:
            raise UserError(f"--gap {args.gap}: must be a number of steps >= 0")
        return verbs[args.verb](args)
    except UserError as err:
        print("grokscan: " + " ".join(str(err).splitlines()), file=sys.stderr)
        return BAD_INPUT


def _run(args: argparse.Namespace) -> int:
    check_numbers(args)
    if not args.dry_run:
        check_address(args.address)
        if args.address:  # before the file's `from ray import tune` (see grokscan.sweep.ray_env)
            os.environ["RAY_ADDRESS"] = args.address
    sweep = load_space(args.space, args.overrides)
    check_size(sweep.max_runs, args.yes or args.dry_run, args.space)
    if note := weights_note(sweep.record, sweep.configs):
        print(note)
    if args.dry_run:
        print(_dry_run(sweep, args))
        return 0
    check_storage(args.storage)
    from grokscan.sweep.runner import run_sweep  # starts Ray: only once the input is known to be good

    outcome = run_sweep(
        sweep,
        args.storage,
        address=args.address,
        gpus_per_trial=args.gpus_per_trial,
        pack_size=args.pack_size,
        max_concurrent=args.max_concurrent,
        compact=not args.no_compact,
    )
    print(
        f"\n{sweep.name}: {outcome.written} runs trained, {outcome.skipped} already stored, "
        f"{outcome.errors} failed, {outcome.wall_s:.0f}s wall"
    )
    if oom := outcome.statuses.get("oom", 0):
        print(
            f"{oom} runs ran out of GPU memory even alone and were not stored (the workers' logs name them); "
            "`grokscan run` again on a GPU with more free memory trains them"
        )
    print(f"results: {os.path.abspath(args.storage) if '://' not in args.storage else args.storage}")
    print(summary(sweep, args.storage, args.gap))
    print(next_commands(args.storage, sweep.name, args.gap))
    return RUNS_FAILED if outcome.errors or oom else 0


def next_commands(storage: str, sweep: str, gap: int = DEFAULT_GAP) -> str:
    """The commands that show a sweep's results, printed at the end of `run` (also in a job's logs)."""
    where, gap_flag = shlex.quote(storage), f" --gap {gap}" if gap != DEFAULT_GAP else ""
    commands = [
        (f"grokscan plot {where} --sweep {sweep}{gap_flag}", "phase map (--kind time|curves|scaling)"),
        (f"grokscan report {where} --sweep {sweep}{gap_flag}", "one HTML page"),
        (f"grokscan serve {where}{gap_flag}", "live view in a browser"),
    ]
    width = max(len(command) for command, _ in commands)
    return "\n".join(["next:", *(f"  {command:<{width}}  # {why}" for command, why in commands)])


def _dry_run(sweep: Sweep, args: argparse.Namespace) -> str:
    """What `run` would train: the runs and the packs it would cut them into (into a results directory that
    holds none of them yet), without starting Ray or writing anything."""
    if sweep.search is not None:
        sampled = ", ".join(sweep.search.domains)
        kind = type(sweep.search.alg).__name__
        return f"{sweep.name}: adaptive search ({kind}) over {sampled}; at most {sweep.max_runs} runs"
    from grokscan.sweep.pack_plan import choose_pack_size, local_cpu_slots, plan_packs, trial_gpus

    slots = local_cpu_slots()
    size = choose_pack_size(
        sweep, sweep.configs, requested=args.pack_size, gpus_per_trial=args.gpus_per_trial, cpu_slots=slots
    )
    packs = plan_packs(sweep.configs, size)
    axes = ", ".join(f"{k} x{len(v)}" for k, v in sweep.axes.items()) or "a single point"
    text = f"{sweep.name}: {len(sweep.configs)} runs over {axes}; {len(packs)} packs of <= {size} runs"
    if trial_gpus(sweep, args.gpus_per_trial):
        text += " (trials: each cuts its runs into packs that fit its GPU's free memory)"
    elif not (args.pack_size or sweep.pack_size):
        text += f" (sized for {slots} local CPU slots)"
    return text


def summary(sweep: Sweep, storage: str, gap: int = DEFAULT_GAP) -> str:
    """One screen: runs by status, how many generalized, and per grid cell over seeds the Kaplan-Meier
    median step_gen ("> budget" when more than half never generalized) and the majority phase (grokking
    when step_gen - step_fit > `gap` steps)."""
    from grokscan.results.analysis import phase_table
    from grokscan.results.store import load_runs

    runs = load_runs(storage, sweep.name, gap=gap)
    if sweep.search is not None:
        return search_summary(sweep, runs)
    runs = runs[runs["run_id"].isin({c.run_id for c in sweep.configs})]
    statuses = ", ".join(f"{n} {s}" for s, n in runs["status"].value_counts().items())
    lines = [f"{len(runs)} runs: {statuses}; {int(runs['step_gen'].notna().sum())} generalized"]
    cells = [k for k in sweep.axes if k not in SEED_FIELDS]
    if cells and len(runs):
        table = phase_table(runs, cells[0], cells[1] if len(cells) > 1 else None, by=cells[2:], gap=gap)
        over = "> " + table["budget"].astype(str)
        median = table["median_step_gen"].round().astype("Int64").astype(str)
        table["median step_gen"] = over.where(table["step_gen_over_budget"], median)
        table["phase"] = table["phase"].fillna("-") + " (" + table["phase_share"].map("{:.0%}".format) + ")"
        lines.append(table.set_index(cells)[["n", "median step_gen", "phase"]].to_string())
    return "\n".join(lines)


def search_summary(sweep: Sweep, runs) -> str:
    """An adaptive sweep: CriticalFraction's boundary per cell, or a Tune searcher's five best runs."""
    from grokscan.sweep.adaptive import CENSORED_PENALTY, objective

    search = sweep.search
    lines = [f"{len(runs)} runs stored under {sweep.name}; {int(runs['step_gen'].notna().sum())} generalized"]
    if search.critical:
        import pandas as pd

        table = pd.DataFrame(search.alg.boundaries())
        lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        return "\n".join(lines)
    rows = runs.astype(object).where(runs.notna(), None).to_dict("records")
    runs = runs.assign(objective=[objective(search.metric, r) for r in rows])
    best = runs.sort_values("objective", ascending=search.mode == "min").head(5)
    columns = [*search.domains, "objective", "step_fit", "step_gen", "phase"]
    never = f"never reached = {CENSORED_PENALTY:g} x budget" if search.metric.startswith("step") else "final"
    lines.append(f"best runs by {search.metric} ({search.mode}; {never}):")
    lines.append(best[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return "\n".join(lines)


def _ls(args: argparse.Namespace) -> int:
    from grokscan.results.store import load_runs

    runs = load_runs(args.storage, skip_corrupt=args.skip_corrupt, gap=args.gap, threshold=args.threshold)
    if runs.empty:
        print(f"no runs under {args.storage}")
        return 0
    phase = runs["phase"].fillna("-")
    table = runs.assign(phase=phase).pivot_table(
        index="sweep", columns=["status", "phase"], values="run_id", aggfunc="count", fill_value=0
    )
    print(table.to_string())
    return 0


def _plot(args: argparse.Namespace) -> int:
    from grokscan.results.store import load_curves
    from grokscan.viz.figures import phase_diagram
    from grokscan.viz.lines import pick_runs
    from grokscan.viz.positions import pick_position_runs
    from grokscan.viz.report import load_sweep

    name, runs = load_sweep(args.storage, args.sweep, gap=args.gap, threshold=args.threshold)
    picks = {"curves": pick_runs, "positions": pick_position_runs}.get(args.kind)
    curves = load_curves(args.storage, name, run_ids=picks(runs)) if picks else None
    fig = phase_diagram(runs, x=args.x, y=args.y, kind=args.kind, curves=curves, gap=args.gap)
    output = args.output or f"{name}_{args.kind}.png"
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    fig.savefig(output, dpi=150)
    print(f"wrote {output}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from grokscan.viz.report import bootstrap_note, fit_table, format_fit_table, load_sweep

    if args.budget is not None and args.budget < 1:
        raise UserError(f"--budget {args.budget}: must be a positive number of steps")
    name, runs = load_sweep(args.storage, args.sweep, gap=args.gap, threshold=args.threshold)
    table = fit_table(runs, x=args.x, budget=args.budget)
    if table["b"].isna().all():
        raise UserError(
            f"no fit of step_gen against {args.x!r} in {name}: " + "; ".join(sorted(set(table["note"])))
        )
    print(
        f"{name}: log step_gen = a - b*{args.x}, censored runs right-censored at steps_run, 95% bootstrap CIs"
    )
    text = format_fit_table(table)
    print(text.drop(columns="note").to_string(index=False))
    for i in table.index[table["note"].fillna("") != ""]:
        where = f"{table.columns[0]}={text.iloc[i, 0]}: " if table.columns[0] != "a" else ""
        print(f"no fit for {where}{table.at[i, 'note']}")
    if note := bootstrap_note(table):
        print(note)
    return 0


def _report(args: argparse.Namespace) -> int:
    from grokscan.viz.report import write_report

    print(
        f"wrote {write_report(args.storage, args.sweep, args.output, gap=args.gap, threshold=args.threshold)}"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from grokscan.viz.serve import serve  # imports Dash: only for this verb

    serve(args.storage, host=args.host, port=args.port, gap=args.gap)
    return 0


def _compact_parser(verbs: argparse._SubParsersAction) -> None:
    compact = verbs.add_parser("compact", help="merge each sweep's fragments into one per table (deduped)")
    compact.add_argument("storage", metavar="RESULTS_DIR", help="results directory or s3://bucket/prefix")
    compact.add_argument("--sweep", default=None, help="sweep name (default: every sweep in the directory)")
    compact.set_defaults(gap=DEFAULT_GAP)  # no phases here; main() checks every verb's gap


def _compact(args: argparse.Namespace) -> int:
    """Compact one sweep or all (`grokscan.results.store.compact`: safe while others read and write)."""
    from grokscan.results.store import compact, sweeps

    names = sweeps(args.storage)
    if not names:
        raise UserError(f"no results under {args.storage} (expected {args.storage}/runs/sweep=NAME/)")
    if args.sweep is not None and args.sweep not in names:
        raise UserError(f"no sweep {args.sweep!r} under {args.storage}; sweeps there: {', '.join(names)}")
    for name in [args.sweep] if args.sweep is not None else names:
        stats = compact(args.storage, name)
        print(
            f"{name}: {stats.fragments_before} -> {stats.fragments_after} fragments, "
            f"{stats.rows_kept} runs kept of {stats.rows_read} runs rows"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
