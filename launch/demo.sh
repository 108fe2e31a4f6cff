#!/usr/bin/env bash
# make demo: distillation where it matters, with few labels (Hinton et al. 2015, §3).
#   1. a teacher trained on all labeled digits;
#   2. a small student from scratch on 5% of the labels;
#   3. the same student, same 5%, same seed, distilled from the teacher (soft targets, T=4);
#   4. the same student distilled label-free by function matching (Beyer et al. 2021: KL at T=1,
#      mixup on every batch, teacher and student on the same mixed image) on all train images,
#      their labels unused: the case of a user with a teacher and a pile of unlabeled images.
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
echo "== export the teacher to ONNX (checked against torch); the students run it with ONNX Runtime"
python -m darklight_dist.export --model digits-teacher --weights "$OUT/teacher/student.pt" --num-classes 10 \
  --image-size 32 --out "$OUT/teacher/teacher.onnx" 2>&1 | sed -n 's/^.*exported/   exported/p'
train distilled --kd soft --teacher "$OUT/teacher/teacher.onnx" --train-fraction 0.05
train funmatch --kd fm --kd-temperature 1 --unlabeled --teacher "$OUT/teacher/teacher.onnx" \
  --epochs 30 --eval-every-epochs 10

echo
python -m darklight_dist.compare "$OUT/teacher" "$OUT/scratch" "$OUT/distilled" "$OUT/funmatch" \
  --json "$OUT/demo.json"
# plots of each run (loss, accuracy, images/s, phase breakdown); needs matplotlib (the plot extra)
for r in teacher scratch distilled funmatch; do python -m darklight_dist.report "$OUT/$r"; done
