"""A stand-in for ``darklight_dist.train`` that exercises only the cluster mechanics.

It speaks the trainer's contract as far as SLURM and torchrun can see it: the same flags
(unknown ones are ignored), a gloo process group from torchrun's environment, one
all-reduce per "step", USR1/TERM finish the step, checkpoint (``checkpoints/LATEST``),
write ``summary.json`` with ``"stop_reason": "signal"`` and exit 75; ``--resume auto``
continues from ``LATEST``. Each rank also writes the sample indices of its shard so
tests can check that ranks read disjoint data.

Run it as ``DARKLIGHT_TRAIN_MODULE=tests.slurm.standin_train`` with the repository root
on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

EXIT_REQUEUE = 75  # the same value as darklight_dist.train.EXIT_REQUEUE


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--output-dir", required=True)
    p.add_argument("--max-steps", type=int, default=10)
    p.add_argument("--resume", default="auto")
    p.add_argument("--ckpt-every-steps", type=int, default=0)
    p.add_argument("--step-seconds", type=float, default=0.2,
                   help="how long one fake step takes (gives a test time to signal)")
    p.add_argument("--dataset-size", type=int, default=64)
    p.add_argument("--stop-ckpt-seconds", type=float, default=0.0,
                   help="how long the checkpoint on a stop signal takes (a big model's save)")
    args, _unknown = p.parse_known_args(argv)  # trainer flags we do not model
    return args


def write_json(path: Path, obj: dict) -> None:
    """Atomic write: a reader never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, path)


def save_checkpoint(out: Path, step: int, interruptions: int) -> None:
    ckpt = out / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    write_json(ckpt / f"step-{step}.json", {"step": step, "interruptions": interruptions})
    (ckpt / "LATEST.tmp").write_text(f"step-{step}.json\n")
    os.replace(ckpt / "LATEST.tmp", ckpt / "LATEST")


def load_checkpoint(out: Path) -> dict:
    latest = out / "checkpoints" / "LATEST"
    if not latest.exists():
        return {"step": 0, "interruptions": 0}
    return json.loads((latest.parent / latest.read_text().strip()).read_text())


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    out = Path(args.output_dir)
    stop = {"signal": 0}

    def on_signal(signum: int, _frame: object) -> None:
        # Only note it: the step in flight finishes and all ranks agree before stopping.
        stop["signal"] = signum

    signal.signal(signal.SIGUSR1, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    node = os.environ.get("SLURMD_NODENAME", socket.gethostname())
    print(f"[standin] rank={rank} world_size={world} node={node} "
          f"group_rank={os.environ.get('GROUP_RANK', '?')} "
          f"restart={os.environ.get('SLURM_RESTART_COUNT', '0')}", flush=True)
    nodes: list[str] = [""] * world
    dist.all_gather_object(nodes, node)

    shard = list(range(rank, args.dataset_size, world))  # DistributedSampler's split
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"shard-rank{rank}.json", {"rank": rank, "node": node, "indices": shard})

    state = load_checkpoint(out) if args.resume != "none" else {"step": 0, "interruptions": 0}
    step, interruptions = state["step"], state["interruptions"]
    if step:
        print(f"[standin] rank={rank} resumed at step {step}", flush=True)

    stop_reason = "completed"  # the real trainer's word for it
    while step < args.max_steps:
        time.sleep(args.step_seconds)
        flags = torch.tensor([float(stop["signal"] != 0), 1.0])
        dist.all_reduce(flags)  # any rank signalled -> all stop after this same step
        assert flags[1].item() == world
        step += 1
        if rank == 0:
            print(f"[standin] step {step}", flush=True)
        if flags[0].item() > 0:
            stop_reason = "signal"
            interruptions += 1
            break
        if rank == 0 and args.ckpt_every_steps and step % args.ckpt_every_steps == 0:
            save_checkpoint(out, step, interruptions)

    if rank == 0:
        if stop_reason == "signal":
            time.sleep(args.stop_ckpt_seconds)
        save_checkpoint(out, step, interruptions)
        summary = {
            "steps": step, "world_size": world, "nodes": nodes, "stop_reason": stop_reason,
            "restarts": int(os.environ.get("SLURM_RESTART_COUNT", "0")),
            "interruptions": interruptions,
        }
        write_json(out / "summary.json", summary)
        print(f"[standin] summary written: {json.dumps(summary, sort_keys=True)}", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    return EXIT_REQUEUE if stop_reason == "signal" else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
