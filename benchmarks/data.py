"""Data-loading benchmark: DALI (CPU operators) vs the torchvision loader, images/s side by side.

    python benchmarks/data.py [--images 3000] [--batch-size 64] [--workers N] [--rounds 3] [--json OUT.json]

Generates ImageNet-like JPEGs once (256-480 px per side, quality 90, random crops and flips of
scikit-learn's two bundled sample photos, 10 class folders), then times one training epoch
(random-resized-crop 224 + flip + normalize, batched) and one validation pass (resize 256 +
center-crop 224 + normalize) of each loader, on one rank, interleaving the backends round by
round. Prints JSON; never asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from darklight_dist.config import Config  # noqa: E402
from darklight_dist.data.layout import FileSet, scan_image_folder  # noqa: E402

DATA_VERSION = "bench-jpegs-v1"


def make_images(root: Path, n: int, seed: int = 0) -> Path:
    """Write `n` JPEGs (ImageNet-like sizes) under root/train/<class>/ once; reuse them afterwards."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    done = root / f"COMPLETE-{n}"
    if done.exists():
        return root / "train"
    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    for k in range(n):
        src = photos[k % len(photos)]
        h, w = src.shape[:2]
        ch, cw = int(rng.integers(h // 3, h + 1)), int(rng.integers(w // 3, w + 1))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        img = Image.fromarray(src[y:y + ch, x:x + cw])
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        img = img.resize((int(rng.integers(256, 481)), int(rng.integers(256, 481))), Image.BICUBIC)
        out = root / "train" / f"class{k % 10}"
        out.mkdir(parents=True, exist_ok=True)
        img.save(out / f"{k:05d}.jpg", quality=90)
    done.write_text("ok\n")
    return root / "train"


def machine() -> dict:
    """CPU model, cores, memory and library versions of this run."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    import PIL
    import torchvision

    try:
        import nvidia.dali as dali
        dali_version = dali.__version__
    except ImportError:
        dali_version = None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "python": platform.python_version(),
            "torch": torch.__version__, "torchvision": torchvision.__version__, "pillow": PIL.__version__,
            "dali": dali_version, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def build(backend: str, files: FileSet, train: bool, args) -> object:
    cfg = Config()
    cfg.optim.batch_size, cfg.data.workers, cfg.data.image_size, cfg.data.val_resize_size = (
        args.batch_size, args.workers, 224, 256)
    cpu = torch.device("cpu")
    if backend == "dali":
        from darklight_dist.data.dali import build_dali_loaders

        tr, va = build_dali_loaders(cfg, rank=0, world_size=1, local_rank=0, device=cpu,
                                    train_files=files if train else None, val_files=files, layout="nchw")
        return tr if train else va
    from darklight_dist.data.torchvision import TorchvisionLoader

    d = cfg.data
    return TorchvisionLoader(files, train=train, batch_size=args.batch_size, rank=0, world=1, workers=args.workers,
                             device=cpu, channels_last=False, image_size=224, resize=256, min_scale=d.min_scale,
                             mean=d.mean, std=d.std, seed=0)


def time_epoch(loader, epoch: int) -> tuple[int, float]:
    """Images and seconds of one pass, including start-up of the pass (workers, prefetch)."""
    loader.set_epoch(epoch)
    n, t0 = 0, time.perf_counter()
    for b in loader:
        n += int(b.valid) if b.valid is not None else len(b)
        b.images.sum()  # touch the data, as a model would
    return n, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="DALI threads / DataLoader workers")
    p.add_argument("--rounds", type=int, default=3, help="timed passes per backend (after one warm-up pass)")
    p.add_argument("--data-dir", default=os.path.join(os.environ.get("DARKLIGHT_CACHE", "/tmp"), DATA_VERSION))
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args()
    torch.set_num_threads(1)  # the main process only batches; the loaders own the cores

    t0 = time.perf_counter()
    files = scan_image_folder(make_images(Path(args.data_dir), args.images))
    gen_s = time.perf_counter() - t0
    sizes = [os.path.getsize(files.root / f) for f in files.files]
    results: dict = {}
    load_before = os.getloadavg()
    for phase, train in (("train", True), ("val", False)):
        loaders = {b: build(b, files, train, args) for b in ("dali", "torchvision")}
        for b, ld in loaders.items():
            time_epoch(ld, 0)  # warm-up: page cache, worker start, DALI allocations
        runs: dict = {b: [] for b in loaders}
        per_pass: dict = {}
        for r in range(args.rounds):
            for b, ld in loaders.items():  # interleaved, so drift of a noisy VM hits both alike
                per_pass[b], s = time_epoch(ld, r + 1)
                runs[b].append(per_pass[b] / s)
        for b, v in runs.items():
            results[f"{phase}/{b}"] = {"images_per_s_median": round(statistics.median(v), 1),
                                       "images_per_s_runs": [round(x, 1) for x in v], "images_per_pass": per_pass[b]}
        # per-round ratios: both backends ran back to back, so load drift on a shared VM cancels better
        paired = [d / t for d, t in zip(runs["dali"], runs["torchvision"])]
        results[f"{phase}/dali_over_torchvision_median_of_rounds"] = round(statistics.median(paired), 2)
        results[f"{phase}/dali_over_torchvision_rounds"] = [round(x, 2) for x in paired]
    mach = machine()
    # other jobs on a shared VM show up here: read the numbers against this
    mach["load_average_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    out = {"benchmark": "data", "date": time.strftime("%Y-%m-%d"), "machine": mach,
           "setup": {"images": len(files), "mean_jpeg_kb": round(sum(sizes) / len(sizes) / 1024, 1),
                     "image_px": "256-480 per side", "batch_size": args.batch_size, "workers": args.workers,
                     "crop": 224, "val_resize": 256, "rounds": args.rounds, "dataset_seconds": round(gen_s, 1)},
           "results": results}
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
