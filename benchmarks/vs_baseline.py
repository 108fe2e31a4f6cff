"""darklight_dist against the hand-written KD loop (benchmarks/baseline_kd.py), side by side, same settings.

    python benchmarks/vs_baseline.py --case digits        # ResNet-18 teacher -> 45k CNN, 32 px, b 128, 30 epochs
    python benchmarks/vs_baseline.py --case rn50-rn18     # ResNet-50 -> ResNet-18, 224 px, b 32, a few steps

Same data (the same JPEG folders), teacher weights, student, loss, optimizer, LR schedule, seed and
batch. darklight_dist runs with --teacher-backend auto (an ONNX teacher when the build has an ONNX
backend) and --data-backend auto, and the JSON records which backends actually ran. The baseline runs
its teacher eager in torch with 2 DataLoader workers. images/s counts training steps only (evaluation
and start-up excluded, in both). Peak host memory is the whole process tree (workers included), RSS
summed (copy-on-write pages counted per process, as `top` would) and PSS (shared pages split).
The digits teacher is trained once (darklight_dist, --kd none) and cached under --work-dir.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fixtures import (REPO, export_onnx, fresh, jpeg_folder, machine, onnx_teachers_supported, random_weights,
                      run, train_cmd, train_rate)

CASES: dict[str, dict[str, Any]] = {
    "digits": {"teacher": "resnet18", "model": "digits-cnn", "image_size": 32, "batch": 128, "epochs": 30,
               "extra": ["--min-scale", "0.35", "--kd-temperature", "4", "--kd-alpha", "0.9", "--lr", "0.1",
                         "--wd", "5e-4", "--lr-warmup-epochs", "2"]},
    "rn50-rn18": {"teacher": "resnet50", "model": "resnet18", "image_size": 224, "batch": 32, "epochs": 1,
                  "extra": ["--kd-temperature", "1", "--kd-alpha", "0.5", "--lr", "0.0125", "--wd", "1e-4"]},
}


def digits_teacher(work: Path, data: Path, epochs: int) -> Path:
    """A ResNet-18 trained on the digits with labels (darklight_dist --kd none), cached."""
    out = work / "digits-teacher"
    if not (out / "student.pt").exists():
        run(train_cmd(["--data-path", str(data), "--model", "resnet18", "--kd", "none", "--image-size", "32",
                       "--val-resize-size", "32", "--min-scale", "0.35", "-b", "128", "--epochs", str(epochs),
                       "--lr", "0.1", "--wd", "5e-4", "--lr-warmup-epochs", "1", "-j", "0", "--device", "cpu",
                       "--output-dir", str(out), "--resume", "none", "--progress", "false",
                       "--eval-every-epochs", str(epochs)]))
    return out / "student.pt"


def prepare(case: str, args: argparse.Namespace) -> tuple[Path, Path, int]:
    """(data folder, teacher weights, steps) for a case."""
    work = args.work_dir
    if case == "digits":
        from darklight_dist.data.builtin import materialize_digits

        data = materialize_digits()
        return data, digits_teacher(work, data, args.teacher_epochs), 0
    c = CASES[case]
    steps = args.steps
    data = jpeg_folder(work / "jpeg224", classes=10, train_per_class=-(-c["batch"] * (steps + 1) // 10),
                       val_per_class=4, side=256)
    return data, random_weights(c["teacher"], 10, work / "rn50-teacher.pt"), steps


def compare(case: str, args: argparse.Namespace) -> dict[str, Any]:
    """Both runs of one case; returns the row."""
    c = {**CASES[case], **({"epochs": args.epochs} if args.epochs else {})}
    data, weights, steps = prepare(case, args)
    common = ["--data-path", str(data), "--model", c["model"], "--kd", "soft", "--image-size", str(c["image_size"]),
              "--val-resize-size", str(c["image_size"]), "-b", str(c["batch"]), "--epochs", str(c["epochs"]),
              "--seed", "0", "--device", args.device, *c["extra"]] + (["--max-steps", str(steps)] if steps else [])
    teacher = ["--teacher", c["teacher"], "--teacher-weights", str(weights)]
    if onnx_teachers_supported() and not args.torch_teacher:
        teacher = ["--teacher", str(export_onnx(c["teacher"], 10, weights, c["image_size"],
                                                weights.with_suffix(".onnx")))]
    out = fresh(args.work_dir / f"{case}-darklight")
    dl_flags = common + teacher + ["--teacher-backend", "auto", "--data-backend", "auto", "-j", str(args.workers),
                                   "--output-dir", str(out), "--resume", "none", "--progress", "false",
                                   "--log-every-steps", "1" if steps else "10", "--eval-every-epochs", "1000",
                                   "--ckpt-every-steps", str(10**9)]
    row: dict[str, Any] = {"case": case, **{k: c[k] for k in ("teacher", "model", "image_size", "batch", "epochs")},
                           "max_steps": steps or None}
    res = args.work_dir / f"{case}-baseline.json"
    base_cmd = [sys.executable, str(REPO / "benchmarks/baseline_kd.py"), "--out", str(res), *common,
                "--teacher", c["teacher"], "--teacher-weights", str(weights),
                "--warmup-steps", str(args.warmup if steps else 0)]
    base_wall = run(base_cmd) if args.baseline_first else 0.0  # alternate the order between runs: load drifts
    wall = run(train_cmd(dl_flags))
    s = json.loads((out / "summary.json").read_text())
    rate, n = train_rate(out, c["batch"], after_step=args.warmup if steps else 0)
    row["darklight"] = {"images_per_s": round(rate, 2), "steps_timed": n, "top1": s["student_top1"],
                        "teacher_top1": s["teacher_top1"], "peak_host_rss_mb": max(s["peak_host_rss_mb_per_rank"]),
                        "peak_host_pss_mb": max(s["peak_host_pss_mb_per_rank"]), "process_wall_s": round(wall, 1),
                        "teacher_backend": s["backends"]["teacher"], "data_backend": s["backends"]["data"],
                        "workers": args.workers, "phases_share": s["phases"]["share"]}
    if not args.baseline_first:
        base_wall = run(base_cmd)
    row["baseline"] = {**json.loads(res.read_text()), "process_wall_s": round(base_wall, 1)}
    row["order"] = "baseline first" if args.baseline_first else "darklight first"
    row["speedup"] = round(row["darklight"]["images_per_s"] / row["baseline"]["images_per_s"], 3)
    row["top1_delta"] = (round(row["darklight"]["top1"] - row["baseline"]["top1"], 2)
                         if row["darklight"]["top1"] is not None else None)
    print(json.dumps(row), file=sys.stderr)
    return row


def main(argv: list[str] | None = None) -> int:
    """Run the cases; print one JSON object."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", choices=(*CASES, "all"), default="all")
    p.add_argument("--steps", type=int, default=8, help="rn50-rn18: training steps (2 of them warmup)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--teacher-epochs", type=int, default=20, help="digits: epochs of the ResNet-18 teacher")
    p.add_argument("--epochs", type=int, help="override the case's student epochs (a shorter run on a busy machine)")
    p.add_argument("-j", "--workers", type=int, default=0,
                   help="darklight's -j: DALI threads, or torchvision workers (0 = decode in the training process)")
    p.add_argument("--baseline-first", action="store_true", help="run the baseline before darklight_dist")
    p.add_argument("--torch-teacher", action="store_true", help="give darklight the torch teacher even if ONNX works")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/darklight_bench/vs_baseline"))
    args = p.parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    rows = [compare(c, args) for c in (CASES if args.case == "all" else [args.case])]
    print(json.dumps({"benchmark": "vs_baseline", "machine": machine(), "rows": rows,
                      "command": "python benchmarks/vs_baseline.py " + " ".join(argv if argv is not None
                                                                              else sys.argv[1:])}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
