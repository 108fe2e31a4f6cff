"""1 rank vs 2 ranks (gloo on CPU, NCCL on GPUs): images/s and scaling efficiency at a fixed per-rank batch.

    python benchmarks/scaling.py --pair digits --data digits --steps 30
    python benchmarks/scaling.py --pair rn50-rn18 --steps 4 --warmup 1

Efficiency = images/s of N ranks / (N x images/s of 1 rank). On CPU every rank gets --threads-per-rank
intra-op threads (default 1: one core per rank on a 2-core machine), so the ratio measures what the
all-reduce and the synchronization cost, not how many cores torch grabs; a 1-rank run with all cores
is reported too, for reference. Prints JSON; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from fixtures import PAIRS, fresh, machine, random_weights, run, train_cmd, train_rate


def one(pair: Any, args: argparse.Namespace, nproc: int, threads: int, weights: Path, out: Path) -> dict[str, Any]:
    """A run with `nproc` ranks; images/s (all ranks) past the warmup, from rank 0's log."""
    n = args.warmup + args.steps
    flags = ["--teacher", pair.teacher, "--teacher-weights", str(weights), "--model", pair.student, "--kd", "soft",
             "--image-size", str(pair.image_size), "--val-resize-size", str(pair.image_size),
             "-b", str(pair.batch_size), "--epochs", "1", "--max-steps", str(n), "--output-dir", str(fresh(out)),
             "--resume", "none", "--progress", "false", "--log-every-steps", "1", "--device", args.device,
             "--ckpt-every-steps", str(10**9), "--eval-every-epochs", "1000", "--lr", "0.01"]
    if args.data == "digits":
        flags += ["--data-path", "builtin:digits", "-j", "0", "--min-scale", "0.35"]
    else:
        flags += ["--data-backend", "synthetic", "--num-classes", str(pair.num_classes),
                  "--synthetic-size", str(pair.batch_size * (n + 1) * nproc)]
    wall = run(train_cmd(flags, nproc), env={"OMP_NUM_THREADS": str(threads)})
    rate, steps = train_rate(out, pair.batch_size * nproc, after_step=args.warmup)
    s = json.loads((out / "summary.json").read_text())
    return {"ranks": nproc, "threads_per_rank": threads, "images_per_s": round(rate, 2), "steps_timed": steps,
            "phases_share": s["phases"]["share"], "peak_host_rss_mb_per_rank": s["peak_host_rss_mb_per_rank"],
            "process_group": s["backends"]["process_group"], "process_wall_s": round(wall, 1)}


def main(argv: list[str] | None = None) -> int:
    """Alternate 1-rank and 2-rank runs for --rounds rounds; keep each one's best; print JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pair", choices=sorted(PAIRS), default="digits")
    p.add_argument("--data", choices=("synthetic", "digits"), default="synthetic")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--threads-per-rank", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/darklight_bench/scaling"))
    args = p.parse_args(argv)
    pair = PAIRS[args.pair]
    weights = random_weights(pair.teacher, pair.num_classes, args.work_dir / f"{args.pair}-teacher.pt")
    runs: dict[str, list[dict[str, Any]]] = {"1": [], str(args.ranks): [], "1_all_cores": []}
    for r in range(args.rounds):
        runs["1"].append(one(pair, args, 1, args.threads_per_rank, weights, args.work_dir / f"r{r}-1"))
        runs[str(args.ranks)].append(one(pair, args, args.ranks, args.threads_per_rank, weights,
                                         args.work_dir / f"r{r}-{args.ranks}"))
        print(json.dumps({k: v[-1] for k, v in runs.items() if v}), file=sys.stderr)
    runs["1_all_cores"].append(one(pair, args, 1, os.cpu_count() or 1, weights, args.work_dir / "all-cores"))
    best = {k: max(v, key=lambda x: x["images_per_s"]) for k, v in runs.items()}
    one_rank, many = best["1"]["images_per_s"], best[str(args.ranks)]["images_per_s"]
    print(json.dumps({"benchmark": "scaling", "pair": args.pair, "data": args.data, "batch_per_rank": pair.batch_size,
                      "image_size": pair.image_size, "machine": machine(), "best": best,
                      "efficiency": round(many / (args.ranks * one_rank), 3) if one_rank else None,
                      "all_rounds": runs, "command": "python benchmarks/scaling.py " + " ".join(
                          argv if argv is not None else sys.argv[1:])}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
