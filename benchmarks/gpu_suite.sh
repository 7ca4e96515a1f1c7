#!/usr/bin/env bash
# Every GPU measurement of issues 13 and 24 in one call, each bounded by a timeout; results land in ${OUT:-gpu_suite}/
# (one log and one JSON per step, status.txt with each step's exit status (124: timeout), summary.md with every
# table row the steps printed).
#   bash benchmarks/gpu_suite.sh      # at most 9 minutes (the sum of the timeouts below), fits one 10-minute call
# 1. gpu_check.py: host syncs in a step, bf16 vs fp32, batch-invariant seeds.
# 2. bench.py, the paper's CIFAR-10 UNet at batch 128 in bf16, eager vs max-autotune (CUDA graphs), NCHW and then
#    channels_last (measured, not assumed): Adam, SAM and T' = 100 sampling with steps/s, images/s, counted FLOP,
#    TFLOP/s and MFU against the device's peak.
# 3. The smoke pipeline end to end on the GPU (device: auto) in a fresh copy of the repository: `dvc repro`, or
#    without dvc on the machine every dvc.yaml stage's command (stage_times.py); its wall time per stage.
set -u
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${OUT:-gpu_suite}")
PY=${PYTHON:-python}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-$PWD}
{ date -u +%FT%TZ; nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv; $PY -c "import torch; print('torch', torch.__version__)"; } > "$OUT/gpu.txt" 2>&1
run() {  # run NAME SECONDS COMMAND...: stdout+stderr to $OUT/NAME.log, exit status (124: timeout) to $OUT/status.txt
  local name=$1 seconds=$2; shift 2
  local start=$SECONDS
  timeout "$seconds" "$@" > "$OUT/$name.log" 2>&1
  echo "$name $? $((SECONDS - start))s" | tee -a "$OUT/status.txt"
}
run gpu_check 60 $PY benchmarks/gpu_check.py
run cifar10_bf16 170 $PY benchmarks/bench.py --configs cifar10 --batch-size 128 --precision bf16 \
    --compile max-autotune --respacing 100 --steps 20 --json "$OUT/cifar10_bf16.json"
run cifar10_bf16_channels_last 110 $PY benchmarks/bench.py --configs cifar10 --batch-size 128 --precision bf16 \
    --channels-last --compile max-autotune --respacing 100 --steps 10 --json "$OUT/cifar10_bf16_channels_last.json"
SMOKE=$(mktemp -d)
git ls-files -z | grep -zv -e '^metrics/' -e '^results/' -e '^docs/' -e '^dvc.lock$' | xargs -0 cp --parents -t "$SMOKE"
$PY -c "from flatlib.profiles import apply_profile; apply_profile('smoke', '$SMOKE/params.yaml')"
if command -v dvc > /dev/null; then
  (cd "$SMOKE" && git init -q && run smoke_pipeline 200 env PYTHONPATH="$SMOKE" dvc repro)
else
  (cd "$SMOKE" && run smoke_pipeline 200 env PYTHONPATH="$SMOKE" $PY benchmarks/stage_times.py --out "$OUT/smoke_stages.json")
fi
grep -h '^|' "$OUT"/*.log > "$OUT/summary.md"
