"""The KD loop people write by hand: torchvision's reference training loop with a frozen teacher added.

ImageFolder + DataLoader (2 workers, shuffle, pin_memory on GPU), PIL decode and torchvision transforms,
an eager torch teacher under no_grad, the student, soft KD loss, SGD, per-step cosine LR. The loss,
optimizer and LR schedule are darklight_dist's own functions, so the math and hyper-parameters are
exactly those of the darklight run it is compared with; only the pipeline differs. Writes one JSON.

    python benchmarks/baseline_kd.py --data-path DIR --teacher resnet18 --teacher-weights T.pt \
        --model digits-cnn --image-size 32 -b 128 --epochs 30 --out result.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import fixtures  # noqa: F401  (puts the repo on sys.path)
import torch
import torchvision.transforms as T
from torchvision.datasets import ImageFolder

from darklight_dist.cli import parse_args
from darklight_dist.losses import build_loss
from darklight_dist.memory import MemorySampler
from darklight_dist.models import build_model
from darklight_dist.optim import build_optimizer, build_scheduler


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--baseline-workers", type=int, default=2)
    p.add_argument("--warmup-steps", type=int, default=0, help="steps left out of images/s (as darklight's are)")
    a, rest = p.parse_known_args()
    cfg = parse_args(rest)  # the darklight flags: one set of hyper-parameters for both runs
    mem = MemorySampler().start()
    torch.manual_seed(cfg.run.seed)
    dev = torch.device("cuda" if torch.cuda.is_available() and cfg.run.device != "cpu" else "cpu")
    d, o, k = cfg.data, cfg.optim, cfg.distill
    norm = T.Normalize(d.mean, d.std)
    train_ds = ImageFolder(Path(d.data_path) / "train", T.Compose([
        T.RandomResizedCrop(d.image_size, scale=(d.min_scale, 1.0), antialias=True), T.RandomHorizontalFlip(),
        T.ToTensor(), norm]))
    val_ds = ImageFolder(Path(d.data_path) / "val", T.Compose([
        T.Resize(d.val_resize_size, antialias=True), T.CenterCrop(d.image_size), T.ToTensor(), norm]))
    loader = torch.utils.data.DataLoader(train_ds, batch_size=o.batch_size, shuffle=True,
                                         num_workers=a.baseline_workers, pin_memory=dev.type == "cuda")
    n = len(train_ds.classes)
    teacher = build_model(cfg.teacher.spec, n)
    teacher.load_state_dict(torch.load(cfg.teacher.weights, map_location="cpu", weights_only=True))
    teacher = teacher.to(dev).eval()
    student = build_model(cfg.student.model, n).to(dev)
    opt = build_optimizer(student, o)
    sched = build_scheduler(opt, o, len(loader))
    loss_fn = build_loss(k.kd, temperature=k.temperature, alpha=k.alpha, label_smoothing=k.label_smoothing)
    steps = o.epochs * len(loader) if o.max_steps is None else min(o.max_steps, o.epochs * len(loader))
    step, train_s, images = 0, 0.0, 0
    for _epoch in range(o.epochs):
        t0 = time.perf_counter()  # per epoch: the DataLoader's worker start-up counts, as it does for the user
        for x, y in loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            with torch.no_grad():
                t = teacher(x)
            loss, _ = loss_fn(student(x), t, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step, images = step + 1, images + len(x)
            if step == a.warmup_steps:  # restart the clock: the first steps (allocator, caches) are not timed
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0, images = time.perf_counter(), 0
            if step >= steps:
                break
        if dev.type == "cuda":
            torch.cuda.synchronize()
        train_s += time.perf_counter() - t0
        if step >= steps:
            break
    student.eval()
    correct = total = t_correct = 0
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(val_ds, batch_size=o.batch_size, num_workers=a.baseline_workers):
            x, y = x.to(dev), y.to(dev)
            correct += int((student(x).argmax(1) == y).sum())
            t_correct += int((teacher(x).argmax(1) == y).sum())
            total += len(y)
    peaks = mem.stop()
    a.out.write_text(json.dumps({
        "steps": step, "images": images, "train_s": round(train_s, 2), "images_per_s": round(images / train_s, 2),
        "top1": round(100 * correct / total, 2), "teacher_top1": round(100 * t_correct / total, 2),
        "peak_host_rss_mb": peaks["rss_mb"], "peak_host_pss_mb": peaks["pss_mb"],
        "workers": a.baseline_workers, "teacher_backend": "torch (eager)"}, indent=1) + "\n")


if __name__ == "__main__":
    main()
