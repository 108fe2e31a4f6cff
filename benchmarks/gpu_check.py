"""One-GPU check (H100/H200 class): teacher runtimes, DALI decode, the full step, memory; one JSON on stdout.

Each section runs in its own subprocess with its own time limit, so a hang or a crash costs that
section only; what is missing (CUDA, onnxruntime-gpu, TensorRT, DALI, a darklight backend) is
skipped with the reason. --dry-run exercises the plumbing on CPU: sections run tiny CPU stand-ins
where they can and report what they would run otherwise. Called by gpu_check.sh.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from fixtures import REPO, export_onnx, jpeg_folder, machine, random_weights

SECTIONS = ("env", "teacher_torch", "step_synthetic", "step_jpeg", "dali_gpu", "teacher_onnxruntime",
            "teacher_tensorrt")
"""In order of importance: when the budget runs out, the last ones are skipped."""
DEFAULT_LIMITS = {"env": 30, "teacher_torch": 120, "step_synthetic": 80, "step_jpeg": 80, "dali_gpu": 40,
                  "teacher_onnxruntime": 60, "teacher_tensorrt": 100}  # the budget (470 s) cuts the tail if needed


class Skip(Exception):
    """A section that cannot run here; the message says why."""


def cuda_or_skip(dry: bool) -> None:
    """Skip GPU-only work without CUDA (in a dry run, the caller decides what to stand in)."""
    import torch

    if not torch.cuda.is_available() and not dry:
        raise Skip("no CUDA device")


def timed_loop(fn: Callable[[], Any], iters: int, warmup: int, cuda: bool) -> float:
    """Median ms per call over `iters` calls after `warmup` (GPU: events around each call)."""
    import torch

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2]


def s_env(a: argparse.Namespace) -> dict[str, Any]:
    """Versions and what is installed."""
    import torch

    out: dict[str, Any] = {**machine(), "cuda_version": torch.version.cuda}
    for mod in ("onnxruntime", "tensorrt", "nvidia.dali"):
        try:
            m = importlib.import_module(mod)
            out[mod] = getattr(m, "__version__", "present")
        except Exception as e:  # missing, or present but broken (wrong CUDA): both worth reporting
            out[mod] = f"absent ({type(e).__name__})"
    if not str(out["onnxruntime"]).startswith("absent"):
        import onnxruntime as ort

        out["onnxruntime_providers"] = ort.get_available_providers()
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        out["device_memory_total_mb"], out["device_memory_free_mb"] = total // 2**20, free // 2**20
    return out


def s_teacher_torch(a: argparse.Namespace) -> dict[str, Any]:
    """ResNet-50 inference: eager, torch.compile, CUDA graph replay (bf16, channels_last)."""
    import torch
    import torchvision

    cuda = torch.cuda.is_available() and not a.dry_run
    dev = torch.device("cuda" if cuda else "cpu")
    bs, size = (a.batch, 224) if cuda else (2, 64)
    model = torchvision.models.resnet50() if cuda else torchvision.models.resnet18()
    dtype = torch.bfloat16 if cuda else torch.float32
    model = model.to(dev, dtype).eval().to(memory_format=torch.channels_last).requires_grad_(False)
    x = torch.randn(bs, 3, size, size, device=dev, dtype=dtype).contiguous(memory_format=torch.channels_last)
    out: dict[str, Any] = {"model": "resnet50" if cuda else "resnet18 (dry, CPU)", "batch": bs, "dtype": str(dtype)}
    iters, warm = (30, 5) if cuda else (2, 1)
    with torch.inference_mode():
        ms = timed_loop(lambda: model(x), iters, warm, cuda)
        out["eager"] = {"ms": round(ms, 3), "images_per_s": round(bs / ms * 1e3, 1)}
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            compiled = torch.compile(model)
            t0 = time.perf_counter()
            compiled(x)
            out["compile_s"] = round(time.perf_counter() - t0, 1)
            ms = timed_loop(lambda: compiled(x), iters, warm, cuda)
            out["compiled"] = {"ms": round(ms, 3), "images_per_s": round(bs / ms * 1e3, 1)}
            static = x.clone()
            s = torch.cuda.Stream()  # capture off the default stream, after warmup on a side stream (torch docs)
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    model(static)
            torch.cuda.current_stream().wait_stream(s)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = model(static)
            ms = timed_loop(graph.replay, iters, warm, cuda)
            out["cuda_graph"] = {"ms": round(ms, 3), "images_per_s": round(bs / ms * 1e3, 1)}
            out["logits_shape"] = list(static_out.shape)
            out["peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        else:
            out["compiled"] = out["cuda_graph"] = "skipped: dry run on CPU"
    return out


def darklight_teacher(backend: str, a: argparse.Namespace, precision: str) -> dict[str, Any]:
    """ResNet-50 as ONNX through darklight's own backend (build_teacher), timed on the device."""
    import torch

    from darklight_dist.cli import parse_args
    from darklight_dist.teachers import build_teacher

    if importlib.util.find_spec(f"darklight_dist.teachers.{backend}") is None:
        raise Skip(f"this darklight_dist build has no {backend} teacher backend (issue 4 not merged?)")
    cuda = torch.cuda.is_available() and not a.dry_run
    if not cuda:
        raise Skip(f"dry run: would build ResNet-50 ONNX with --teacher-backend {backend} --teacher-precision "
                   f"{precision} at batch {a.batch}")
    weights = random_weights("resnet50", 1000, a.work_dir / "rn50.pt")
    onnx = export_onnx("resnet50", 1000, weights, 224, a.work_dir / "rn50.onnx")
    cfg = parse_args(["--teacher", str(onnx), "--teacher-backend", backend, "--teacher-precision", precision,
                      "-b", str(a.batch), "--teacher-max-batch", str(a.batch), "--engine-cache",
                      str(a.work_dir / "engines")])
    dev = torch.device("cuda", 0)
    free0 = torch.cuda.mem_get_info()[0]
    t0 = time.perf_counter()
    teacher, why = build_teacher(cfg, cfg.teacher.spec, num_classes=1000, device=dev)
    build_s = time.perf_counter() - t0
    torch.cuda.synchronize()
    engine_mb = (free0 - torch.cuda.mem_get_info()[0]) / 2**20
    x = torch.randn(a.batch, 3, 224, 224, device=dev)
    ms = timed_loop(lambda: teacher(x), 30, 5, True)
    return {"backend": teacher.info.backend, "why": why, "precision": precision, "batch": a.batch,
            "build_s": round(build_s, 1), "ms": round(ms, 3), "images_per_s": round(a.batch / ms * 1e3, 1),
            "device_memory_mb": round(engine_mb, 1), "copies": getattr(teacher, "copies", None),
            "extra": {k: str(v) for k, v in teacher.info.extra.items()}}


def s_teacher_onnxruntime(a: argparse.Namespace) -> dict[str, Any]:
    """ONNX Runtime CUDA EP through darklight's backend."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise Skip("onnxruntime is not installed")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers() and not a.dry_run:
        raise Skip(f"onnxruntime has no CUDAExecutionProvider (providers: {ort.get_available_providers()}); "
                   "install onnxruntime-gpu")
    return darklight_teacher("onnxruntime", a, "fp16")


def s_teacher_tensorrt(a: argparse.Namespace) -> dict[str, Any]:
    """TensorRT engine (fp16) through darklight's backend: build time, img/s, engine device memory."""
    if importlib.util.find_spec("tensorrt") is None:
        raise Skip("tensorrt is not installed (pip install 'darklight-dist[trt]')")
    return darklight_teacher("tensorrt", a, "fp16")


def s_dali_gpu(a: argparse.Namespace) -> dict[str, Any]:
    """DALI decode + random-resized-crop + flip + normalize of generated JPEGs, device='mixed'."""
    if importlib.util.find_spec("nvidia.dali") is None:
        raise Skip("nvidia-dali is not installed")
    import torch
    from nvidia.dali import fn, pipeline_def, types

    cuda = torch.cuda.is_available() and not a.dry_run
    n_img = 2048 if cuda else 16
    data = jpeg_folder(a.work_dir / f"dali-jpeg-{n_img}", classes=8, train_per_class=n_img // 8, val_per_class=1,
                       side=375)
    bs = min(a.batch, n_img)
    dev_kind = "mixed" if cuda else "cpu"

    @pipeline_def(batch_size=bs, num_threads=8 if cuda else 1, device_id=0 if cuda else None, seed=0)
    def pipe():  # type: ignore[no-untyped-def]
        jpegs, labels = fn.readers.file(file_root=str(data / "train"), random_shuffle=True, name="Reader")
        img = fn.decoders.image_random_crop(jpegs, device=dev_kind, output_type=types.RGB)
        img = fn.resize(img, resize_x=224, resize_y=224)
        img = fn.crop_mirror_normalize(img, dtype=types.FLOAT16 if cuda else types.FLOAT, output_layout="HWC",
                                       mean=[0.485 * 255, 0.456 * 255, 0.406 * 255],
                                       std=[0.229 * 255, 0.224 * 255, 0.225 * 255],
                                       mirror=fn.random.coin_flip(probability=0.5))
        return img, labels

    p = pipe()
    p.build()
    batches = max(2, n_img // bs)
    p.run()  # warmup (allocations, nvJPEG handles)
    t0 = time.perf_counter()
    for _ in range(batches):
        out = p.run()
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"decode": dev_kind, "batch": bs, "images": batches * bs, "images_per_s": round(batches * bs / dt, 1),
            "output_shape": list(out[0].as_tensor().shape()) if hasattr(out[0], "as_tensor") else None}


def step(a: argparse.Namespace, data: str) -> dict[str, Any]:
    """benchmarks/step.py for ResNet-50 -> ResNet-18 (bf16, channels_last), overlap on and off."""
    import torch

    cuda = torch.cuda.is_available() and not a.dry_run
    if cuda:
        args = ["--pair", "rn50-rn18", "-b", str(a.batch), "--amp", "bf16", "--channels-last", "--data", data,
                "--warmup", "10", "--steps", "20", "--log-every", "10", "--rounds", "1", "--overlap", "both",
                "--device", "cuda", "-j", "8"]
    else:
        args = ["--pair", "tiny", "--data", data, "--warmup", "1", "--steps", "1", "--rounds", "1", "--device", "cpu",
                "-j", "0"]
    r = subprocess.run([sys.executable, str(REPO / "benchmarks/step.py"), *args, "--work-dir", str(a.work_dir)],
                       capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    res = json.loads(r.stdout)
    keep = {k: v for k, v in res.items() if k.startswith(("full", "ratio", "bound"))}
    return {"command": "python benchmarks/step.py " + " ".join(args), **keep}


SECTION_FNS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "env": s_env, "teacher_torch": s_teacher_torch, "teacher_onnxruntime": s_teacher_onnxruntime,
    "teacher_tensorrt": s_teacher_tensorrt, "dali_gpu": s_dali_gpu,
    "step_synthetic": lambda a: step(a, "synthetic"), "step_jpeg": lambda a: step(a, "jpeg"),
}


def run_section(name: str, a: argparse.Namespace) -> dict[str, Any]:
    """In this process: one section's JSON record."""
    t0 = time.perf_counter()
    try:
        rec = {"status": "ok", "result": SECTION_FNS[name](a)}
    except Skip as e:
        rec = {"status": "skipped", "reason": str(e)}
    except Exception as e:  # a section's failure is data for the report, not the end of the check
        rec = {"status": "error", "reason": f"{type(e).__name__}: {str(e)[-1500:]}"}
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    return rec


def main(argv: list[str] | None = None) -> int:
    """Orchestrate the sections (each a subprocess with a time limit) within --budget-s; print the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="CPU: exercise arguments, sections and JSON only")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list from: {', '.join(SECTIONS)}")
    p.add_argument("--budget-s", type=float, default=470, help="whole check; sections past it are skipped")
    p.add_argument("--batch", type=int, default=256, help="teacher and step batch size on the GPU")
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/darklight_gpu_check"))
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run this section in this process
    a = p.parse_args(argv)
    a.work_dir.mkdir(parents=True, exist_ok=True)
    if a.one:
        print(json.dumps(run_section(a.one, a)))
        return 0
    wanted = [s.strip() for s in a.sections.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    t_start = time.perf_counter()
    report: dict[str, Any] = {"benchmark": "gpu_check", "dry_run": a.dry_run, "batch": a.batch, "sections": {}}
    for name in wanted:
        left = a.budget_s - (time.perf_counter() - t_start)
        limit = min(DEFAULT_LIMITS[name], left)
        if limit < 5:
            report["sections"][name] = {"status": "skipped", "reason": f"out of budget ({a.budget_s:.0f} s)"}
            continue
        cmd = [sys.executable, __file__, "--one", name, "--batch", str(a.batch), "--work-dir", str(a.work_dir)]
        cmd += ["--dry-run"] if a.dry_run else []
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
            lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
            rec = json.loads(lines[-1]) if lines else {"status": "error", "reason": f"exit {r.returncode}: "
                                                                                   f"{r.stderr[-1500:]}"}
        except subprocess.TimeoutExpired:
            rec = {"status": "timeout", "reason": f"over its {limit:.0f} s limit", "seconds": round(limit, 1)}
        report["sections"][name] = rec
        print(f"[gpu_check] {name}: {rec['status']} ({rec.get('seconds', '?')} s)", file=sys.stderr)
    report["total_s"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
