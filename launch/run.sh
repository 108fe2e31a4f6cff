#!/usr/bin/env bash
# darklight_dist on one machine: torchrun starts one worker per GPU.
#
#   launch/run.sh launch/recipes/digits.toml --max-steps 100
#   NGPU=8 RECIPE=my_recipe.toml launch/run.sh --epochs 90 --output-dir runs/x
#
# Arguments: an optional recipe (*.toml, or RECIPE=...) then trainer flags, unchanged.
# Environment:
#   NGPU        workers (default: the number of GPUs nvidia-smi lists, 1 without GPUs)
#   RECIPE      recipe file passed as --config
#   SHOW_RANKS  local ranks whose output reaches the console: "0" (default), "0,3",
#               or "all"; torchrun's --local-ranks-filter
#   LOG_DIR     also keep every rank's stdout/stderr under this directory (torchrun --tee)
#   PYTHON      interpreter (default python3 on PATH); torchrun runs through it
#   DARKLIGHT_TRAIN_MODULE  the entry point (default darklight_dist.train)
# For several machines use slurm/distill.sbatch (or torchrun --nnodes with c10d).
set -euo pipefail

PYTHON=${PYTHON:-python3}
TRAIN_MODULE=${DARKLIGHT_TRAIN_MODULE:-darklight_dist.train}
RECIPE=${RECIPE:-}
if [[ $# -gt 0 && $1 == *.toml ]]; then RECIPE=$1; shift; fi

if [[ -z ${NGPU:-} ]]; then
    NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
    [[ $NGPU -gt 0 ]] || NGPU=1   # CPU: one gloo worker
fi

torchrun_args=(--standalone --nproc-per-node="$NGPU")
# Every rank logs the same progress; by default only local rank 0 reaches the console.
if [[ ${SHOW_RANKS:-0} != all ]]; then
    torchrun_args+=(--local-ranks-filter="${SHOW_RANKS:-0}")
fi
if [[ -n ${LOG_DIR:-} ]]; then
    torchrun_args+=(--log-dir="$LOG_DIR" --tee=3)
fi

train_args=()
[[ -n $RECIPE ]] && train_args+=(--config "$RECIPE")

exec "$PYTHON" -m torch.distributed.run "${torchrun_args[@]}" \
    -m "$TRAIN_MODULE" "${train_args[@]}" "$@"
