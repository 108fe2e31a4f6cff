#!/usr/bin/env bash
# make demo: distillation where it matters, with few labels (Hinton et al. 2015, §3).
#   1. a teacher trained on all labeled digits;
#   2. a small student from scratch on 5% of the labels;
#   3. the same student, same 5%, same seed, distilled from the teacher (soft targets, T=4).
# Every run is 2 ranks under torchrun (gloo, CPU). Prints a table; each run leaves its summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/demo}
NPROC=${NPROC:-2}
RECIPE=launch/recipes/digits.toml
rm -rf "$OUT"
mkdir -p "$OUT"

train() {  # train NAME FLAGS...: one 2-rank run, rank 0's log kept in OUT/NAME.log
  local name=$1; shift
  echo "== $name: $*"
  torchrun --standalone --nproc_per_node="$NPROC" -m darklight_dist.train --config "$RECIPE" \
    --output-dir "$OUT/$name" "$@" >"$OUT/$name.log" 2>&1 || { tail -n 30 "$OUT/$name.log"; exit 1; }
  grep -E "eval step" "$OUT/$name.log" | tail -n 1 | sed 's/^/   /'
}

train teacher --model digits-teacher --kd none --epochs 15 --lr 0.1 --lr-warmup-epochs 1 --eval-every-epochs 5
train scratch --kd none --train-fraction 0.05
train distilled --kd soft --teacher builtin:digits-teacher --teacher-weights "$OUT/teacher/student.pt" \
  --train-fraction 0.05

echo
python -m darklight_dist.compare "$OUT/teacher" "$OUT/scratch" "$OUT/distilled" --json "$OUT/demo.json"
# plots of each run (loss, accuracy, images/s, phase breakdown); needs matplotlib (the plot extra)
for r in teacher scratch distilled; do python -m darklight_dist.report "$OUT/$r"; done
