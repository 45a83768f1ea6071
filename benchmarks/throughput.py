"""Training throughput: grokscan's packed trainer against the naive one-model loop, side by side in one run.

Naive: one model as a standard torch.nn.Module (embedding -> MLP; or Nanda et al.'s 1-layer decoder-only
transformer without LayerNorm: tokens "x y =", causal attention over all positions, logits read at the last),
torch.optim.AdamW with a 10-step LambdaLR warmup, full batch, loss.backward(), optimizer.step(), zero_grad(),
torch's default thread count: the way the reference repositories train.
Packed: grokscan.engine.pack.Pack.train_step (the loop train_pack runs between evals) for each pack size,
inside loop._cpu_mode (one thread on CPU, as train_pack trains). On CPU also "packed, K procs": the same
members split over K = cores spawned processes, one thread each, all timed from one barrier; that is how
grokscan uses a machine (Ray runs one pack per core). Packed rows' processes start with the glibc malloc
settings grokscan gives its Ray workers (engine.packing.WORKER_MALLOC_ENV); naive rows with glibc's
defaults, as the reference repositories train (--malloc-reuse: naive rows too, a diagnostic).

Every row runs in a fresh spawned process: warm-up steps (at least one, until --warmup-s), then timed steps
(about --seconds worth, at most --steps; "steps" is per process); evals are not timed. model-steps/s =
members x timed steps / seconds; GFLOP/s counts matmul FLOPs only (2 m n k per product, forward + 2x forward
for backward; `mlp_flops`, `transformer_flops`); "% peak" is that over the device's FP32 peak (datasheet,
`FP32_PEAK_TFLOPS`, or --peak-tflops). Memory per member: CPU, growth of the process's peak RSS
(getrusage ru_maxrss) from before the model is built to after the timed steps, / members: it includes
malloc's slack, a few MB per process, which small packs show per member; CUDA, torch.cuda.max_memory_allocated
above what was allocated before. "est" is grokscan.engine.memory.pack_bytes / members, what pack sizing uses.

    python benchmarks/throughput.py [--device cpu|cuda] [--steps 200] [--sizes 1,8,16,64,256,1024]
        [--seconds 4] [--max-step-s 10] [--workloads mlp,transformer] [--malloc-reuse] [--pair]

--pair measures the naive row between every two rows and gives each row's ratio to the naive rows beside
it: on a machine shared with other work, the load changes within a run and most of all slows the naive
loop's 2 threads.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from datetime import datetime, timezone
from queue import Empty

import torch
import torch.nn.functional as F
from torch import nn

from grokscan.config import RunConfig
from grokscan.engine import loop, memory
from grokscan.engine.pack import Pack, task_table
from grokscan.engine.packing import WORKER_MALLOC_ENV
from grokscan.tasks.split import split

WORKLOADS = {
    "mlp": RunConfig(),  # x+y mod 97, frac 0.5, width 64, depth 1, AdamW, full batch
    "transformer": RunConfig(model="transformer", p=113, frac=0.3),  # d_model 128, 4 heads, d_mlp 512
}


NAIVE_EXTRA = {
    "mlp": " (packed folds the embedding into the first layer)",
    "transformer": " (naive computes every position in the last layer)",
}


def mlp_flops(cfg: RunConfig, rows: int, folded: bool) -> int:
    """Matmul FLOPs of one training step of one member: 3 x forward (backward = 2 x forward). folded: the
    first layer multiplies each input position's block by the [p, width] embedding table once per step
    (grokscan, `mlp.folded_first_layer`); else every row's concatenated embeddings (the naive loop)."""
    fan_in, per_row, fixed = 2 * cfg.width, 0, 0  # two embedded tokens, concatenated
    for layer in range(cfg.depth):
        if layer == 0 and folded:
            fixed = 2 * 2 * cfg.p * cfg.width * cfg.width
        else:
            per_row += 2 * fan_in * cfg.width
        fan_in = cfg.width
    per_row += 2 * fan_in * cfg.p
    return 3 * (per_row * rows + fixed)


def transformer_flops(cfg: RunConfig, rows: int, last_only: bool) -> int:
    """As mlp_flops, for the transformer over T = 3 tokens. last_only: the final layer computes only the
    read-out position (grokscan); else every position, as the reference implementation does."""
    t, d, per_row = 3, cfg.width, 0
    for layer in range(cfg.depth):
        tq = 1 if last_only and layer == cfg.depth - 1 else t
        per_row += 2 * 2 * t * d * d + 2 * 2 * tq * d * d  # k, v over all positions; q, o over tq
        per_row += 2 * 2 * tq * t * d  # scores q k^T and attn @ v, summed over heads
        per_row += 2 * 2 * tq * d * cfg.d_mlp  # MLP in and out
    return 3 * (per_row + 2 * d * cfg.p) * rows


def step_flops(workload: str, trainer: str) -> int:
    cfg = WORKLOADS[workload]
    if cfg.model == "mlp":
        return mlp_flops(cfg, cfg.n_train, folded=trainer == "packed")
    return transformer_flops(cfg, cfg.n_train, last_only=trainer == "packed")


class NaiveMLP(nn.Module):
    def __init__(self, cfg: RunConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.p, cfg.width)
        widths = [2 * cfg.width] + [cfg.width] * cfg.depth  # two embedded tokens, concatenated
        hidden = [
            m for a, b in zip(widths[:-1], widths[1:], strict=True) for m in (nn.Linear(a, b), nn.ReLU())
        ]
        self.mlp = nn.Sequential(*hidden, nn.Linear(cfg.width, cfg.p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.embed(x).flatten(1))


class NaiveTransformer(nn.Module):
    """Nanda et al. 2023: 1 layer, no LayerNorm, ReLU MLP, learned positions, causal attention."""

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__()
        d, self.p, self.heads = cfg.width, cfg.p, cfg.heads
        self.embed = nn.Embedding(cfg.p + 1, d)
        self.pos = nn.Parameter(torch.randn(3, d) / math.sqrt(d))
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.mlp_in, self.mlp_out = nn.Linear(d, cfg.d_mlp), nn.Linear(cfg.d_mlp, d)
        self.unembed = nn.Linear(d, cfg.p, bias=False)
        self.register_buffer("causal", torch.ones(3, 3, dtype=torch.bool).triu(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eq = torch.full((len(x), 1), self.p, dtype=x.dtype, device=x.device)
        h = self.embed(torch.cat([x, eq], 1)) + self.pos
        b, t, d = h.shape

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = heads(self.q(h)), heads(self.k(h)), heads(self.v(h))
        scores = (q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)).masked_fill(
            self.causal, float("-inf")
        )
        h = h + self.o((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d))
        h = h + self.mlp_out(F.relu(self.mlp_in(h)))
        return self.unembed(h[:, -1])


def _naive_step(cfg: RunConfig, dev: torch.device):
    data = task_table(cfg)
    rows, _ = split(len(data.y), cfg.frac, cfg.split_seed)
    x, y = data.x[rows].to(dev), data.y[rows].to(dev)
    torch.manual_seed(cfg.seed)
    model = (NaiveMLP if cfg.model == "mlp" else NaiveTransformer)(cfg).to(dev)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(cfg.beta1, cfg.beta2)
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(s / cfg.warmup, 1.0))

    def step(_: int) -> None:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()

    return step


def _measure(spec: dict, barrier) -> dict:
    """One row's work in this (fresh) process; see the module doc."""
    dev, cfg, packed = torch.device(spec["device"]), WORKLOADS[spec["workload"]], spec["trainer"] == "packed"
    cuda = dev.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    with loop._cpu_mode(dev) if packed else contextlib.nullcontext():
        if spec["one_thread"]:  # the diagnostic single-threaded naive row
            torch.set_num_threads(1)
        # Not member memory: the task table, and the kernels and thread pool a first step loads.
        tiny = dataclasses.replace(cfg, p=7)
        if packed:
            task_table(cfg)
            Pack([tiny], dev).train_step(1)
        else:
            _naive_step(tiny, dev)(1)
        sync()
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
        if packed:
            seeds = range(spec["seed0"], spec["seed0"] + spec["members"])
            pack = Pack([dataclasses.replace(cfg, seed=s, split_seed=s) for s in seeds], dev)
            step = pack.train_step
        else:
            step = _naive_step(cfg, dev)
        s, t0 = 0, time.monotonic()
        while s < 20 and (s == 0 or time.monotonic() - t0 < spec["warmup_s"]):  # warm-up
            s, t_step = s + 1, time.monotonic()
            step(s)
            sync()
            last = time.monotonic() - t_step
        n = spec["timed_steps"] or max(1, min(spec["max_steps"], round(spec["seconds"] / last)))
        if barrier is not None:
            barrier.wait()
        sync()
        start, cpu0 = time.monotonic(), time.process_time()
        for t in range(s + 1, s + n + 1):
            step(t)
        sync()
        end, cpu = time.monotonic(), time.process_time() - cpu0
    if cuda:
        peak = torch.cuda.max_memory_allocated(dev) - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    return dict(members=spec["members"], steps=n, start=start, end=end, peak=peak, cpu=cpu)


def _worker(spec: dict, barrier, queue) -> None:
    try:
        queue.put(_measure(spec, barrier))
    except BaseException as err:  # report, and release the siblings waiting at the barrier
        if barrier is not None:
            barrier.abort()
        queue.put({"error": f"{type(err).__name__}: {err}"})


@contextlib.contextmanager
def _environ(env: dict[str, str]):
    """os.environ with `env` set, restored after."""
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_row(spec: dict, procs: int) -> dict:
    """One row in `procs` fresh spawned processes, members split evenly, timed from one barrier:
    model-steps/s = all member-steps / (last end - first start)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    ctx = mp.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(procs) if procs > 1 else None
    share = spec["members"] // procs
    workers = [
        ctx.Process(target=_worker, args=({**spec, "members": share, "seed0": k * 10**5}, barrier, queue))
        for k in range(procs)
    ]
    with _environ(spec["malloc_env"]):  # read by glibc as each spawned worker starts
        for w in workers:
            w.start()
    parts: list[dict] = []
    while len(parts) < procs:
        try:
            parts.append(queue.get(timeout=2))
        except Empty:
            dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if dead:  # killed without reporting (SIGKILL: likely out of memory)
                for w in workers:
                    if w.is_alive():
                        w.terminate()
                parts.append({"error": f"a worker exited with code {dead[0]} without reporting"})
                break
    for w in workers:
        w.join()
    if errors := [p["error"] for p in parts if "error" in p]:
        return {"error": errors[0]}
    wall = max(p["end"] for p in parts) - min(p["start"] for p in parts)
    rate = sum(p["members"] * p["steps"] for p in parts) / wall
    cpu_ms = 1e3 * sum(p["cpu"] for p in parts) / sum(p["members"] * p["steps"] for p in parts)
    return dict(
        rate=rate,
        steps=parts[0]["steps"],
        wall=wall,
        peak=sum(p["peak"] for p in parts),
        load=load,
        cpu_ms=cpu_ms,
    )


# Dense FP32 peak (no tensor cores), TFLOP/s, from NVIDIA's datasheets: what a float32 run's matmuls can use
# without matmul_precision="tf32".
FP32_PEAK_TFLOPS = {"H200": 67.0, "H100 80GB HBM3": 67.0, "H100 PCIe": 51.0, "A100": 19.5, "L40S": 91.6}


def peak_tflops(dev: torch.device) -> float | None:
    """The device's FP32 peak by name (FP32_PEAK_TFLOPS), None where unknown (every CPU)."""
    if dev.type != "cuda":
        return None
    name = torch.cuda.get_device_name(dev)
    return next((v for k, v in FP32_PEAK_TFLOPS.items() if k in name), None)


def _peak_share(flops_per_s: float, peak: float | None) -> str:
    return f"{100 * flops_per_s / (peak * 1e12):>7.2f}%" if peak else f"{'-':>8}"


def _device_lines(dev: torch.device, cores: int, naive_reuse: bool) -> list[str]:
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        name = f"cuda, {props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"
        return [f"device: {name}", "memory column: torch.cuda.max_memory_allocated / member"]
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    inherited = " ".join(f"{k}={v}" for k, v in os.environ.items() if k.startswith("MALLOC_"))
    packed = " ".join(f"{k}={v}" for k, v in WORKER_MALLOC_ENV.items())
    naive = "the same" if naive_reuse else "glibc defaults"
    malloc = f"packed rows {packed} (grokscan's Ray workers' setting), naive rows {naive}"
    malloc += f"; inherited {inherited}" if inherited else ""
    return [
        f"device: cpu, {cpu}, {cores} cores usable ({os.cpu_count()} online)",
        f"threads: naive = torch default, {torch.get_num_threads()} intra-op / "
        f"{torch.get_num_interop_threads()} inter-op (and a 1-thread row); packed = 1 per process",
        f"malloc: {malloc}",
        "memory column: growth of peak RSS (ru_maxrss) / member",
    ]


def _available_bytes(dev: torch.device) -> int:
    if dev.type == "cuda":
        return torch.cuda.mem_get_info(dev)[0]
    with contextlib.suppress(OSError, ValueError, StopIteration), open("/proc/meminfo") as f:
        return int(next(ln for ln in f if ln.startswith("MemAvailable:")).split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def run_workload(name: str, args: argparse.Namespace, dev: torch.device, cores: int) -> list[str]:
    """Measure and print one workload's rows; returns the skipped ones."""
    cfg, procs, skipped = WORKLOADS[name], cores if dev.type == "cpu" else 1, []
    base = dict(workload=name, device=args.device, seconds=args.seconds, warmup_s=args.warmup_s)
    base.update(max_steps=args.steps, timed_steps=None, seed0=0, one_thread=False)
    rows = [("naive", 1, 1)] + ([("naive, 1 thread", 1, 1)] if dev.type == "cpu" and cores > 1 else [])
    for m in sorted({int(s) for s in args.sizes.split(",")}):
        rows += [("packed", m, 1)] + ([("packed", m, procs)] if 1 < procs <= m else [])
    if args.pair:  # a naive row between every two rows: each ratio is to the naive rows beside it
        rows = [row for packed in rows[1:] for row in (("naive", 1, 1), packed)]
    rows.append(("naive", 1, 1))  # again at the end: ratios are to the mean of both, and drift shows
    per_member_s, naive_rates, done = None, [], []
    for trainer, m, k in rows:
        label = "naive (1 model)" if trainer == "naive" else trainer
        label = f"packed, {k} proc" + "s" * (k > 1) if trainer == "packed" else label
        spec = {**base, "trainer": trainer.split(",")[0], "members": m, "one_thread": "1 thread" in trainer}
        spec["malloc_env"] = WORKER_MALLOC_ENV if trainer == "packed" or args.malloc_reuse else {}
        if trainer == "packed" and per_member_s is not None:
            step_s, need = per_member_s * m / k, memory.pack_bytes(cfg, m // k) * k
            if step_s > args.max_step_s:
                skipped.append(f"{name} {label} x{m}: ~{step_s:.0f} s per step > --max-step-s")
                continue
            if need > 0.8 * _available_bytes(dev):
                skipped.append(f"{name} {label} x{m}: needs ~{need / 2**30:.1f} GiB (estimate)")
                continue
            if k > 1:  # all workers time the same number of steps
                spec["timed_steps"] = max(1, min(args.steps, round(args.seconds / step_s)))
        print(f"  running {name} {label} x{m} ...", file=sys.stderr, flush=True)
        r = run_row(spec, k)
        if "error" not in r and trainer == "naive":
            naive_rates.append(r["rate"])
        elif "error" not in r and trainer == "packed" and k == 1:
            per_member_s = 1 / r["rate"]
        done.append((label, spec["trainer"], m, k, r))
    naive_rate = sum(naive_rates) / len(naive_rates) if naive_rates else float("nan")
    for i, (label, trainer, m, k, r) in enumerate(done):
        if args.pair and "rate" in r:
            naive = [j for j in (i - 1, i + 1) if 0 <= j < len(done) and done[j][0] == "naive (1 model)"]
            beside = [done[j][4] for j in naive]
            beside = [b["rate"] for b in beside if "rate" in b] if label != "naive (1 model)" else [r["rate"]]
            naive_rate = sum(beside) / len(beside) if beside else float("nan")
        if "error" in r:
            print(f"{name:<12}{label:<20}{m:>8}  error: {r['error']}")
            continue
        est = f"{memory.pack_bytes(cfg, m // k) / (m // k) / 1e6:8.1f}" if trainer == "packed" else " " * 8
        print(
            f"{name:<12}{label:<20}{m:>8}{r['steps']:>6}{r['wall']:>8.2f}{r['rate']:>15.2f}"
            f"{r['rate'] / naive_rate:>8.2f}x{r['rate'] * step_flops(name, trainer) / 1e9:>9.1f}"
            f"{_peak_share(r['rate'] * step_flops(name, trainer), args.peak_tflops)}"
            f"{r['peak'] / m / 1e6:>11.1f}{est}{r['load']:>6.1f}{r['cpu_ms']:>8.2f}",
            flush=True,
        )
    return skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--device", choices=("cpu", "cuda"), default="cpu")
    add("--steps", type=int, default=200, help="at most this many timed steps per row")
    add("--sizes", default="1,8,16,64,256,1024", help="pack sizes, comma-separated")
    add("--seconds", type=float, default=4.0, help="timed seconds per row (about)")
    add("--warmup-s", type=float, default=1.0, help="warm-up seconds (at least 1 step)")
    add("--max-step-s", type=float, default=10.0, help="skip sizes predicted slower per step")
    add("--workloads", default="mlp,transformer")
    add("--malloc-reuse", action="store_true", help="diagnostic: naive rows with the packed rows' malloc too")
    add("--pair", action="store_true", help="a naive row before and after every row (a shared machine)")
    add("--peak-tflops", type=float, default=None, help="the device's FP32 peak (default: FP32_PEAK_TFLOPS)")
    args = parser.parse_args()
    dev = torch.device(args.device)
    args.peak_tflops = args.peak_tflops or peak_tflops(dev)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    print(f"grokscan throughput benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"torch {torch.__version__}, python {platform.python_version()}, {platform.system()}")
    if hasattr(os, "getloadavg"):  # a shared machine's other work slows the 2-thread naive row most
        print("load average before: " + " ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1, 5, 15 min)")
    lines = _device_lines(dev, cores, args.malloc_reuse)
    print("\n".join(lines) + "; est = grokscan.engine.memory.pack_bytes / members")
    print("load: the 1-minute load average as the row started (other work slows the naive 2 threads most)")
    peak = f"{args.peak_tflops:g} TFLOP/s FP32" if args.peak_tflops else "unknown (--peak-tflops)"
    print(f"% peak: GFLOP/s over the device's peak, {peak}")
    print(f"timing: >= {args.warmup_s:g} s warm-up, then ~{args.seconds:g} s (<= {args.steps} steps) per row")
    if args.pair:
        print("x naive: to the mean of the naive (1 model) rows measured just before and after the row\n")
    else:
        print("x naive: to the mean of the two naive (1 model) rows, measured first and last\n")
    for name in args.workloads.split(","):
        cfg, fl = WORKLOADS[name], {t: step_flops(name, t) for t in ("naive", "packed")}
        shape = f"width {cfg.width}" + (f", {cfg.heads} heads, d_mlp {cfg.d_mlp}" if cfg.heads else "")
        print(
            f"{name}: {cfg.task} mod {cfg.p}, frac {cfg.frac}, {cfg.n_train} train rows, full batch, {shape}"
        )
        print(
            f"  {cfg.model}_flops: {fl['packed'] / 1e9:.3f} GFLOP per member-step packed, "
            f"{fl['naive'] / 1e9:.3f} naive" + ("" if fl["packed"] == fl["naive"] else NAIVE_EXTRA[cfg.model])
        )
    head = f"{'workload':<12}{'trainer':<20}{'members':>8}{'steps':>6}{'seconds':>8}"
    head += f"{'model-steps/s':>15}{'x naive':>9}{'GFLOP/s':>9}{'% peak':>8}{'MB/member':>11}{'est MB':>8}"
    head += f"{'load':>6}{'cpu ms':>8}"
    print(f"\n{head}\n{'-' * len(head)}")
    skipped = [line for name in args.workloads.split(",") for line in run_workload(name, args, dev, cores)]
    for line in skipped:
        print(f"skipped: {line}")
    if dev.type == "cpu":
        print("no GPU rows: run with --device cuda on a GPU machine for those.")


if __name__ == "__main__":
    main()
