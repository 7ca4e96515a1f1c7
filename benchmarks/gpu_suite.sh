#!/usr/bin/env bash
# Every GPU measurement of issue 13 in one call, each bounded by a timeout; results land in ${OUT:-gpu_suite}/.
#   bash benchmarks/gpu_suite.sh      # at most 8.5 minutes (the sum of the timeouts below), fits one 10-minute call
# 1. gpu_check.py: host syncs, bf16 vs fp32, batch-invariant seeds.
# 2. bench.py on the paper's CIFAR-10 UNet at batch 128: fp32 eager vs default compile, bf16 eager vs max-autotune
#    (CUDA graphs),
#    Adam, SAM and sampling with steps/s, images/s, counted FLOP, TFLOP/s and MFU.
# 3. The same for the CPU default model on the GPU (launch-bound: what CUDA graphs buy for tiny models).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_suite}
PY=${PYTHON:-python}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-.}
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > "$OUT/gpu.csv" 2>&1
run() {  # run NAME SECONDS COMMAND...: stdout+stderr to $OUT/NAME.log, exit status (124: timeout) to $OUT/status.txt
  local name=$1 seconds=$2; shift 2
  timeout "$seconds" "$@" > "$OUT/$name.log" 2>&1
  echo "$name $?" | tee -a "$OUT/status.txt"
}
run gpu_check 60 $PY benchmarks/gpu_check.py
run cifar10_fp32 150 $PY benchmarks/bench.py --configs cifar10 --batch-size 128 --precision fp32 --channels-last \
    --compile default --steps 20 --json "$OUT/cifar10_fp32.json"
run cifar10_bf16 200 $PY benchmarks/bench.py --configs cifar10 --batch-size 128 --precision bf16 --channels-last \
    --compile max-autotune --steps 20 --json "$OUT/cifar10_bf16.json"
run default_fp32 100 $PY benchmarks/bench.py --configs default --compile max-autotune --steps 50 \
    --json "$OUT/default_fp32.json"
