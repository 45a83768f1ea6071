#!/usr/bin/env bash
# grokscan's GPU check, for a fresh CUDA machine that has torch (and ideally pytest) but not Ray:
#   1. the gpu-marked tests that need no Ray (CUDA pack invariance, a real CUDA OOM split, tf32/bf16),
#   2. benchmarks/throughput.py --device cuda: naive loop vs packed, 1..4096 members, MLP and transformer,
#   3. benchmarks/refill.py: a grokking grid with early stopping, wall time with vs without refill,
#   4. a paper-scale run set through train_runs: Nanda et al.'s 1-layer transformer on x+y mod 113,
#      training fraction x seed grid (benchmarks/paper_sweep.py).
# Each stage has its own time limit (7.3 minutes in all) and writes as it goes, so a stage
# cut short still leaves its partial output. Everything goes under one folder: $1, else $OUT, else
# ./gpu_check_out.   Usage: bash benchmarks/gpu_check.sh [OUT_DIR]
# GPU_CHECK_DEVICE=cpu GPU_CHECK_TINY=1 runs the same stages on CPU at toy sizes (tests/test_gpu_check.py).
set -u
device=${GPU_CHECK_DEVICE:-cuda}
if [ -n "${GPU_CHECK_TINY:-}" ]; then
  bench=(--sizes 2 --seconds 0.2 --warmup-s 0.1 --steps 3)
  refill=(--p 11 --seeds 2 --steps 100 --pack-size 4 --repeat 1)
  sweep=(--p 11 --width 8 --fracs 0.3,0.6 --seeds 2 --steps 100 --eval-every 50)
else
  bench=(--sizes 1,4,16,64,256,1024,4096 --seconds 2 --warmup-s 1 --steps 500 --max-step-s 5)
  refill=(--p 47 --seeds 32 --steps 2000 --pack-size 32 --repeat 1)
  sweep=(--fracs 0.3,0.4,0.5,0.6,0.7 --seeds 8 --steps 10000 --eval-every 100)
fi
out=${1:-${OUT:-gpu_check_out}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the checkout itself: no install, no Ray needed
export PYTHONUNBUFFERED=1
log="$out/gpu_check.log"
stage() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$log"; }

stage "device"
{
  date -u
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  python -c "import torch; print('device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
  python -c "import ray" 2>/dev/null && echo "ray: installed (not used)" || echo "ray: not installed (not needed)"
  nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv 2>/dev/null || true
} > "$out/device.txt" 2>&1
cat "$out/device.txt" | tee -a "$log"

stage "1/4 gpu tests (limit 90 s)"
if python -c "import pytest" 2>/dev/null; then
  timeout 90 python -m pytest -q -m gpu -p no:cacheprovider \
    tests/engine/test_gpu.py tests/engine/test_pack_invariance.py > "$out/pytest_gpu.txt" 2>&1
  echo "pytest exit code $?" >> "$out/pytest_gpu.txt"
else
  echo "pytest is not installed: the gpu tests were not run" > "$out/pytest_gpu.txt"
fi
tail -n 5 "$out/pytest_gpu.txt" | tee -a "$log"

for workload in mlp transformer; do  # one table per call: a time limit keeps the finished table
  stage "2/4 throughput, naive vs packed, $workload (limit 100 s)"
  timeout 100 python benchmarks/throughput.py --device "$device" --workloads "$workload" "${bench[@]}" \
    > "$out/throughput_$workload.txt" 2> "$out/throughput_$workload.log"
  echo "throughput $workload exit code $?" | tee -a "$log"
  cat "$out/throughput_$workload.txt" >> "$log"
done

stage "3/4 refill vs no refill (limit 60 s)"
timeout 60 python benchmarks/refill.py --device "$device" "${refill[@]}" > "$out/refill.txt" 2>&1
echo "refill exit code $?" | tee -a "$log"
cat "$out/refill.txt" >> "$log"

stage "4/4 paper-scale sweep through train_runs (limit 90 s)"
timeout 90 python benchmarks/paper_sweep.py --device "$device" --out "$out/paper_sweep" "${sweep[@]}" \
  > "$out/paper_sweep.txt" 2> "$out/paper_sweep.log"
echo "paper sweep exit code $? (on its time limit it stops, keeping the finished runs)" | tee -a "$log"
cat "$out/paper_sweep.txt" >> "$log"
stage "done: $out"
