"""Cost of the opt-in progress measures (grokscan.engine.progress) per eval, side by side in one run.

For each workload and opt-in metric set, one pack of --members runs is built inside loop._cpu_mode (one
thread on CPU, as train_pack trains). "eval ms": `Pack.evaluate` with the default curves only; "+ ms": the
time the opt-in metrics' own `compute` calls take inside `Pack.evaluate` of a pack that records them (timed
around each call, so the rest of the eval's noise does not enter it). Each is the fastest of --repeats
(on a shared machine the minimum is the least disturbed). "x eval" = (eval + extra) / eval; "x interval"
adds eval_every training steps to both, what recording at every eval adds to training time; with
record["every"] = k the measures run at one eval in k.

    python benchmarks/progress_cost.py [--device cpu|cuda] [--members 8] [--repeats 7]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time

import torch

from grokscan.config import RunConfig
from grokscan.engine import loop
from grokscan.engine.pack import Pack
from grokscan.engine.recording import Recording, recording

WORKLOADS = {
    "mlp x+y p=97": RunConfig(),
    "transformer x+y p=113": RunConfig(model="transformer", p=113, frac=0.3),
}
SETS = {
    "layer_norms": ("layer_norms",),
    "fourier": ("fourier",),
    "key_freq_losses": ("key_freq_losses",),
    "all three": ("layer_norms", "fourier", "key_freq_losses"),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


class _Timed:
    """A metric whose compute calls add their time to `spent`."""

    def __init__(self, metric, device: torch.device) -> None:
        self.metric, self.device, self.spent = metric, device, 0.0
        self.columns_for = metric.columns_for

    def compute(self, ev):
        out: list[torch.Tensor] = []
        self.spent += _time(lambda: out.append(self.metric.compute(ev)), self.device)
        return out[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    print(f"device: {device} ({name}); torch {torch.__version__}; members per pack: {args.members}")
    print(f"{'workload':24} {'measures':16} {'eval ms':>9} {'+ ms':>9} {'x eval':>7} {'x interval':>10}")
    with loop._cpu_mode(device):
        for label, base in WORKLOADS.items():
            configs = [RunConfig(**{**base.to_dict(), "seed": s}) for s in range(args.members)]
            plain = Pack(configs, device)
            plain.evaluate()  # warm-up
            step_s = min(_time(lambda p=plain: p.train_step(1), device) for _ in range(3))
            for set_name, metrics in SETS.items():
                with recording(Recording(metrics=metrics)):
                    measured = Pack(configs, device)
                timed = [_Timed(m, device) for m in measured.metrics if m.name in metrics]
                measured.metrics = [*(m for m in measured.metrics if m.name not in metrics), *timed]
                measured.evaluate()
                base_times, extra = [], []
                for _ in range(args.repeats):
                    base_times.append(_time(plain.evaluate, device))
                    for t in timed:
                        t.spent = 0.0
                    measured.evaluate()
                    extra.append(sum(t.spent for t in timed))
                base_s = min(base_times)
                with_s = base_s + min(extra)
                interval = base_s + base.eval_every * step_s
                print(
                    f"{label:24} {set_name:16} {1e3 * base_s:9.2f} {1e3 * (with_s - base_s):9.2f} "
                    f"{with_s / base_s:7.2f} {(interval + with_s - base_s) / interval:10.3f}"
                )


if __name__ == "__main__":
    main()
