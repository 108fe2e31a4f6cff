"""Teacher backends side by side: images/s and peak memory on the same model and batch, JSON out.

    python benchmarks/teacher.py --model resnet18 --image-size 224 --batch-size 8 --json out.json

CPU: torch eager (NCHW), torch channels_last, ONNX Runtime (IO binding). CUDA adds torch fp16
channels_last, ONNX Runtime CUDA (if onnxruntime-gpu is installed) and TensorRT with a static
(min = opt = max = batch) and a dynamic (1 / batch / 2 x batch) profile, if tensorrt imports.

Timing: rounds interleave the backends (this VM class is noisy, see perf_anchors.md section 7),
each round times `--iters` calls after `--warmup`; the median round is reported. Peak memory:
each backend is also set up and run in a child process of its own, which reports its peak RSS
above the RSS after imports (CPU) or its peak CUDA allocation (GPU). Benchmarks never assert.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from darklight_dist.export import quiet_exporter_logs  # noqa: E402
from darklight_dist.teachers.export import export_onnx, resolve_model  # noqa: E402


def _status_kib(field: str) -> int:
    """A /proc/self/status memory field in KiB (VmRSS now, VmHWM peak).

    VmHWM, not getrusage's ru_maxrss: the latter survives fork+exec, so a child started by a
    large parent reports the parent's peak.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def available_backends(device: torch.device) -> list[str]:
    """The backends this machine can run, in display order."""
    names = ["torch-eager", "torch-channels-last", "onnxruntime"]
    if device.type == "cuda":
        names.insert(2, "torch-fp16-channels-last")
        try:
            import tensorrt  # noqa: F401
            names += ["tensorrt-static", "tensorrt-dynamic"]
        except Exception:
            pass
    return names


def make_backend(name: str, args: argparse.Namespace, onnx: Path, device: torch.device) -> tuple[Callable, torch.Tensor]:
    """(teacher callable, input batch in the layout/dtype that backend prefers)."""
    from darklight_dist.teachers.torch import TorchTeacher
    b, s = args.batch_size, args.image_size
    x = torch.randn(b, 3, s, s, device=device)
    if name.startswith("torch"):
        model = resolve_model(args.model, None, args.num_classes)
        cl = "channels-last" in name
        precision = "fp16" if "fp16" in name else "fp32"
        teacher = TorchTeacher(model, num_classes=args.num_classes, device=device, precision=precision,
                               channels_last=cl)
        x = x.to(torch.float16) if precision == "fp16" else x
        return teacher, x.contiguous(memory_format=torch.channels_last) if cl else x
    if name == "onnxruntime":
        from darklight_dist.teachers.onnxruntime import OnnxRuntimeTeacher
        return OnnxRuntimeTeacher(onnx, device=device), x
    from darklight_dist.teachers.tensorrt import build_tensorrt_teacher
    static = name == "tensorrt-static"
    teacher = build_tensorrt_teacher(onnx, device=device, precision=args.trt_precision,
                                     min_batch=b if static else 1, opt_batch=b, max_batch=b if static else 2 * b,
                                     cache_dir=args.engine_cache)
    return teacher, x.to(teacher.in_dtype)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_round(fn: Callable, x: torch.Tensor, iters: int, device: torch.device) -> float:
    """Seconds per call over `iters` calls (synchronized at the ends only)."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn(x)
    _sync(device)
    return (time.perf_counter() - t0) / iters


def peak_memory_child(args: argparse.Namespace, name: str, onnx: Path) -> dict:
    """Run one backend alone in a child process and return its memory report."""
    cmd = [sys.executable, __file__, "--memory-child", name, "--onnx", str(onnx)] + args.passthrough
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_child(args: argparse.Namespace, device: torch.device) -> None:
    """Child mode: set up one backend, run a few calls, print its peak memory as JSON."""
    import onnxruntime  # noqa: F401  # imports are not the backend's memory
    import torchvision  # noqa: F401
    base = _status_kib("VmRSS")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fn, x = make_backend(args.memory_child, args, Path(args.onnx), device)
    for _ in range(3):
        fn(x)
    _sync(device)
    peak = _status_kib("VmHWM")
    report = {"peak_rss_above_imports_mib": round((peak - base) / 1024, 1)}
    if device.type == "cuda":
        report["peak_cuda_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    print(json.dumps(report))


def machine() -> dict:
    """What the numbers were measured on."""
    info = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def parse_args(argv=None) -> argparse.Namespace:
    """Command line (the child processes get the model/batch flags passed through)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--iters", type=int, default=5, help="calls per timed round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds; the median is reported")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--trt-precision", default="fp16", choices=("fp32", "fp16"))
    p.add_argument("--engine-cache", default=None)
    p.add_argument("--no-memory", action="store_true", help="skip the per-backend child processes")
    p.add_argument("--json", help="also write the JSON here")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    p.add_argument("--onnx", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.passthrough = ["--model", args.model, "--num-classes", str(args.num_classes), "--image-size",
                        str(args.image_size), "--batch-size", str(args.batch_size), "--device", args.device,
                        "--trt-precision", args.trt_precision] + (["--engine-cache", args.engine_cache]
                                                                  if args.engine_cache else [])
    return args


def main(argv=None) -> dict:
    """Export once, time every backend interleaved, measure memory per backend, print JSON."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.memory_child:
        memory_child(args, device)
        return {}
    quiet_exporter_logs()
    with tempfile.TemporaryDirectory() as tmp:
        precision = "fp16" if (args.trt_precision == "fp16" and device.type == "cuda") else "fp32"
        onnx = export_onnx(args.model, Path(tmp) / "teacher.onnx", num_classes=args.num_classes,
                           image_size=args.image_size, precision="fp32").path
        # TensorRT 11 builds the ONNX's own precision: give it an fp16 graph when fp16 is asked for.
        trt_onnx = onnx if precision == "fp32" else export_onnx(
            args.model, Path(tmp) / "teacher16.onnx", num_classes=args.num_classes, image_size=args.image_size,
            precision="fp16").path
        names = available_backends(device)
        runs = {}
        for name in names:
            fn, x = make_backend(name, args, trt_onnx if name.startswith("tensorrt") else onnx, device)
            for _ in range(args.warmup):
                fn(x)
            runs[name] = (fn, x, [])
        for _ in range(args.rounds):  # interleaved: drift and noise hit every backend alike
            for name, (fn, x, times) in runs.items():
                times.append(time_round(fn, x, args.iters, device))
        results = {}
        for name, (_, _, times) in runs.items():
            med = statistics.median(times)
            results[name] = {"ms_per_batch_median": round(1000 * med, 2), "ms_per_batch_min": round(1000 * min(times), 2),
                             "images_per_s": round(args.batch_size / med, 1)}
            if not args.no_memory:
                results[name].update(peak_memory_child(args, name, trt_onnx if name.startswith("tensorrt") else onnx))
        eager = results["torch-eager"]["ms_per_batch_median"]
        best_torch = min(v["ms_per_batch_median"] for k, v in results.items() if k.startswith("torch"))
        ort_ms = results["onnxruntime"]["ms_per_batch_median"]
        report = {"model": args.model, "image_size": args.image_size, "batch_size": args.batch_size,
                  "device": str(device), "rounds": args.rounds, "iters": args.iters, "machine": machine(),
                  "results": results,
                  "onnxruntime_speedup_vs_torch_eager": round(eager / ort_ms, 2),
                  "onnxruntime_speedup_vs_best_torch": round(best_torch / ort_ms, 2)}
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
