"""Inputs of the benchmarks: named teacher/student pairs, generated JPEG folders, random-weight teachers, runs.

Benchmarks measure speed and memory, not accuracy (vs_baseline is the exception and trains real
teachers): random weights cost the same as trained ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python benchmarks/x.py` from a checkout, installed or not
    sys.path.insert(0, str(REPO))


@dataclass(frozen=True)
class Pair:
    """A teacher/student pair at an image size and batch."""

    teacher: str
    student: str
    image_size: int
    batch_size: int
    num_classes: int


PAIRS = {
    "rn50-rn18": Pair("resnet50", "resnet18", 224, 32, 1000),
    "digits": Pair("resnet18", "digits-cnn", 32, 128, 10),
    "tiny": Pair("tiny-mlp", "digits-cnn", 16, 8, 10),  # smoke tests of the benchmarks themselves
}


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import platform

    import torch

    info: dict[str, Any] = {"host_cpus": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
                            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    try:
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)  # > cores: other jobs share the machine (noisy)
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def random_weights(model: str, num_classes: int, path: Path, seed: int = 0) -> Path:
    """A state_dict file of a randomly initialized model (cached)."""
    import torch

    from darklight_dist.models import build_model

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(seed)
        torch.save(build_model(model, num_classes).state_dict(), path)
    return path


def jpeg_folder(root: Path, *, classes: int, train_per_class: int, val_per_class: int, side: int,
                seed: int = 0) -> Path:
    """An ImageFolder of smooth random JPEGs (photo-like sizes: ~4:3, q90), written once under `root`."""
    import numpy as np
    from PIL import Image

    done = root / "COMPLETE"
    if done.exists():
        return root
    rng = np.random.default_rng(seed)
    h, w = side, side * 4 // 3
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            d = root / split / f"c{c:03d}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                low = rng.integers(0, 255, (h // 16 + 1, w // 16 + 1, 3)).astype(np.uint8)
                img = np.asarray(Image.fromarray(low).resize((w, h), Image.BICUBIC), dtype=np.int16)
                img = np.clip(img + rng.integers(-12, 12, img.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i:05d}.jpg", quality=90)
    done.write_text("generated\n")
    return root


def train_cmd(args: list[str], nproc: int = 0) -> list[str]:
    """The darklight_dist training command, under torchrun when nproc > 0."""
    if nproc:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                "-m", "darklight_dist.train", *args]
    return [sys.executable, "-m", "darklight_dist.train", *args]


def fresh(out: Path) -> Path:
    """An empty output folder: a run appends to an existing log.jsonl, which would mix two runs' records."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    return out


def run(cmd: list[str], env: Optional[dict[str, str]] = None, timeout: int = 3600) -> float:
    """Run a command (output kept for errors); returns its wall seconds."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return time.perf_counter() - t0


def train_records(out: Path, after_step: int = 0) -> list[dict[str, Any]]:
    """The run's train records past `after_step` (warmup excluded)."""
    recs = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines() if ln.strip()]
    return [r for r in recs if r.get("type") == "train" and r["step"] > after_step]


def median(xs: list[float]) -> float:
    """The median (no numpy needed)."""
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def onnx_teachers_supported() -> bool:
    """Whether this build has an ONNX teacher backend (ONNX Runtime arrives with issue 4's merge)."""
    import importlib.util

    return importlib.util.find_spec("darklight_dist.teachers.onnxruntime") is not None


def export_onnx(model: str, num_classes: int, weights: Path, image_size: int, path: Path) -> Path:
    """Export a named model with given weights to ONNX (dynamic batch), once."""
    if path.exists():
        return path
    import torch

    from darklight_dist.models import build_model

    m = build_model(model, num_classes)
    m.load_state_dict(torch.load(weights, weights_only=True))
    m.eval()
    x = torch.randn(2, 3, image_size, image_size)
    torch.onnx.export(m, (x,), str(path), input_names=["images"], output_names=["logits"], opset_version=17,
                      dynamic_axes={"images": {0: "n"}, "logits": {0: "n"}}, dynamo=False)
    return path


def train_rate(out: Path, batch_per_step: int, after_step: int = 0) -> tuple[float, int]:
    """(images/s over the training steps only, steps counted) from a run's log.jsonl: eval and start-up excluded."""
    recs = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines() if ln.strip()]
    train = [r for r in recs if r.get("type") == "train"]
    ms = steps = 0.0
    prev = 0
    for r in train:
        n = r["step"] - prev
        prev = r["step"]
        if r["step"] > after_step:
            ms += r["step_ms"] * n
            steps += n
    return (steps * batch_per_step / (ms / 1e3) if ms else 0.0), int(steps)
