"""`grokscan submit | status | logs`: a sweep as a Ray Job on a cluster (`grokscan.sweep.jobs`). `status` and
`logs --follow` exit with the job's code (`grokscan.sweep.jobs.exit_code`)."""

from __future__ import annotations

import argparse
import sys

from grokscan.results.phases import DEFAULT_GAP
from grokscan.sweep.preflight import check_numbers, check_size
from grokscan.sweep.space import load_space


def job_parsers(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`submit`, `status` and `logs`: a sweep as a Ray Job on a cluster (`grokscan.sweep.jobs`)."""
    address = dict(
        default=None,
        help="the cluster's job server, http://HOST:8265 (default: "
        "$RAY_API_SERVER_ADDRESS, else http://127.0.0.1:8265, where `ray dashboard` forwards it)",
    )
    submit = verbs.add_parser("submit", help="run a search-space file on a Ray cluster as a Ray Job")
    submit.add_argument("space", help="search-space file (validated here, then shipped with the job)")
    submit.add_argument("--address", **address)
    submit.add_argument("--storage", default="results", help="s3://bucket/prefix, or a path on the cluster")
    passed = "as for `grokscan run` (passed to the job)"
    for flag, kw in (
        ("--set", dict(dest="overrides", action="append", default=[], metavar="KEY=VALUE")),
        ("--gpus-per-trial", dict(type=float)),
        ("--pack-size", dict(type=int)),
        ("--max-concurrent", dict(type=int)),
        ("--yes", dict(action="store_true")),
        ("--no-compact", dict(action="store_true")),
    ):
        submit.add_argument(flag, help=passed, **kw)
    for name, what in (("status", "print a submitted sweep's status"), ("logs", "print a job's output")):
        verb = verbs.add_parser(name, help=what)
        verb.add_argument("job", help="job id, as `submit` printed it")
        verb.add_argument("--address", **address)
        verb.set_defaults(gap=DEFAULT_GAP)
        if name == "logs":
            verb.add_argument("--follow", action="store_true", help="stream the logs until the job ends")
    return submit


def _run_flags(args: argparse.Namespace) -> list[str]:
    """The `grokscan run` flags of a `submit`, for the job's entrypoint (not --address or --storage)."""
    flags = [flag for text in args.overrides for flag in ("--set", text)]
    numbers = {"--gpus-per-trial": args.gpus_per_trial, "--pack-size": args.pack_size}
    for flag, value in {**numbers, "--max-concurrent": args.max_concurrent}.items():
        flags += [flag, str(value)] if value is not None else []
    flags += ["--gap", str(args.gap)] if args.gap != DEFAULT_GAP else []
    return flags + [flag for flag, on in (("--yes", args.yes), ("--no-compact", args.no_compact)) if on]


def _submit(args: argparse.Namespace) -> int:
    check_numbers(args)
    sweep = load_space(args.space, args.overrides)  # a bad file never reaches the cluster
    check_size(sweep.max_runs, args.yes, args.space)
    from grokscan.sweep.jobs import JobServer, job_storage

    server, storage = JobServer(args.address), job_storage(args.storage)
    job = server.submit(sweep, storage, _run_flags(args))
    print(f"{sweep.name}: {sweep.max_runs} runs submitted to {server.url} as Ray job {job}")
    print(f"  grokscan logs {job} --address {server.url} --follow  # its output, until it ends")
    print(f"  grokscan status {job} --address {server.url}         # PENDING, RUNNING, SUCCEEDED, ...")
    if "://" not in storage:
        print(f"results: {storage} on the cluster's nodes (on a cloud cluster use s3://BUCKET/prefix)")
    return 0


def _job(args: argparse.Namespace) -> int:
    """`status`, and `logs` (with --follow: the job's exit code once it ends, `grokscan.sweep.jobs`)."""
    from grokscan.sweep.jobs import JobServer, exit_code, status_text

    server = JobServer(args.address)
    if args.verb == "logs":
        try:
            server.logs(args.job, follow=args.follow)
        except KeyboardInterrupt:
            print(f"\nstopped following {args.job}; the job goes on", file=sys.stderr)
            return 130
        if not args.follow:
            return 0
    info = server.details(args.job)
    print(status_text(args.job, info), file=sys.stderr if args.verb == "logs" else sys.stdout)
    return exit_code(info)


JOB_VERBS = {"submit": _submit, "status": _job, "logs": _job}
