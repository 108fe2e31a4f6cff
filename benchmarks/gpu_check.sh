#!/usr/bin/env bash
# One GPU machine (H100/H200 class), under 8 minutes, one JSON on stdout (progress on stderr):
#   bash benchmarks/gpu_check.sh                  # everything present; what is missing is skipped, with the reason
#   bash benchmarks/gpu_check.sh --dry-run        # CPU: argument handling, sections and JSON only
#   bash benchmarks/gpu_check.sh --sections env,teacher_torch --batch 128 > gpu.json
# Sections, most important first: env, teacher_torch (eager / compiled / CUDA graph), step_synthetic and step_jpeg
# (benchmarks/step.py: overlap on and off, peak memory), dali_gpu (mixed decode), teacher_onnxruntime, teacher_tensorrt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
for a in "$@"; do
  case "$a" in -h|--help) exec "$PY" benchmarks/gpu_check.py --help ;; esac
done
# the hard stop: 8 minutes whatever a section does (the Python side budgets 470 s by default)
exec timeout --kill-after=10 480 "$PY" benchmarks/gpu_check.py "$@"
