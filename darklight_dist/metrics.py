"""Meters, phase timers and sinks (progress bar, log.jsonl, TensorBoard); only rank 0 writes.

The logger decides its own interval (`maybe_log`), so the training loop only reports what happened.
Loss parts are accumulated as device tensors and read back at log time only: no per-step host sync.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import torch

PHASES: tuple[str, ...] = ("data", "teacher", "student", "optimizer")
"""Data wait, teacher forward, student forward+backward (DDP all-reduce overlaps it), optimizer step."""


class PhaseTimer:
    """Per-phase wall time: perf_counter on CPU, CUDA events on GPU (read lazily at log time)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.totals: dict[str, float] = defaultdict(float)  # ms, since the last `collect`
        self.run_totals: dict[str, float] = defaultdict(float)  # ms, whole run
        self._pending: list[tuple[str, Any, Any]] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the enclosed block as phase `name`."""
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self._pending.append((name, start, end))
        else:
            t0 = time.perf_counter()
            yield
            self.totals[name] += (time.perf_counter() - t0) * 1e3

    def collect(self) -> dict[str, float]:
        """Milliseconds per phase since the last call (synchronizes on the recorded events only)."""
        for name, start, end in self._pending:
            end.synchronize()
            self.totals[name] += start.elapsed_time(end)
        self._pending.clear()
        out = {k: self.totals.get(k, 0.0) for k in PHASES}
        for k, v in out.items():
            self.run_totals[k] += v
        self.totals.clear()
        return out


def process_tree_rss_mb() -> float:
    """Resident memory of this process and all its descendants (DataLoader workers, DALI threads), in MB."""
    try:
        parents: dict[int, int] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    with open(f"/proc/{entry.name}/stat") as f:
                        parents[int(entry.name)] = int(f.read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
        tree, frontier = {os.getpid()}, [os.getpid()]
        while frontier:
            p = frontier.pop()
            kids = [c for c, pp in parents.items() if pp == p and c not in tree]
            tree.update(kids)
            frontier += kids
        total = 0
        for pid in tree:
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1])
            except OSError:
                continue
        return total * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # no /proc (macOS): fall back to this process's peak
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MetricLogger:
    """Accumulates step results; every `every` steps writes one JSON line and updates the bar (rank 0)."""

    def __init__(self, output_dir: str | Path, *, is_main: bool, every: int, total_steps: int, start_step: int,
                 device: torch.device, world_size: int, progress: bool = True, tensorboard: bool = False) -> None:
        self.is_main, self.every, self.world_size = is_main, max(1, every), world_size
        self.timer = PhaseTimer(device)
        self.device = device
        self._sums: dict[str, torch.Tensor] = {}
        self._count, self._images, self._t0 = 0, 0, time.perf_counter()
        self.images_seen, self.peak_rss_mb = 0, process_tree_rss_mb()
        self.last_record: dict[str, Any] = {}
        self._jsonl = self._bar = self._tb = None
        if is_main:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            self._jsonl = open(Path(output_dir) / "log.jsonl", "a", buffering=1)
            if progress:
                from tqdm import tqdm
                self._bar = tqdm(total=total_steps, initial=start_step, dynamic_ncols=True, unit="step",
                                 mininterval=1.0)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:
                    from .errors import ConfigError
                    raise ConfigError("--tensorboard needs the tensorboard package: pip install 'darklight-dist[tb]'")
                self._tb = SummaryWriter(str(Path(output_dir) / "tb"))

    def update(self, parts: dict[str, torch.Tensor], n_images: int) -> None:
        """Record one step's detached loss parts (no sync) and its image count (this rank)."""
        for k, v in parts.items():
            self._sums[k] = self._sums[k] + v if k in self._sums else v.clone()
        self._count += 1
        self._images += n_images
        self.images_seen += n_images * self.world_size

    def maybe_log(self, step: int, epoch: int, lr: float, *, force: bool = False) -> Optional[dict[str, Any]]:
        """Write a record if `step` is on the interval (or forced); returns it."""
        if self._count == 0 or not (force or step % self.every == 0):
            return None
        phases = self.timer.collect()
        elapsed = time.perf_counter() - self._t0
        rec: dict[str, Any] = {"type": "train", "step": step, "epoch": epoch, "lr": lr}
        rec.update({k: float(v) / self._count for k, v in self._sums.items()})  # the one host sync per log
        rec["images_per_s"] = self._images * self.world_size / max(elapsed, 1e-9)
        rec["step_ms"] = elapsed * 1e3 / self._count
        rec.update({f"{k}_ms": v / self._count for k, v in phases.items()})
        busy = sum(phases.values())
        rec["teacher_share"] = phases["teacher"] / busy if busy else 0.0
        self.peak_rss_mb = max(self.peak_rss_mb, process_tree_rss_mb())
        self._sums, self._count, self._images, self._t0 = {}, 0, 0, time.perf_counter()
        self.last_record = rec
        self.write(rec)
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{rec['loss']:.4f}", img_s=f"{rec['images_per_s']:.0f}",
                                  teacher=f"{100 * rec['teacher_share']:.0f}%", refresh=False)
        return rec

    def advance(self, n: int = 1) -> None:
        """Move the progress bar."""
        if self._bar is not None:
            self._bar.update(n)

    def write(self, rec: dict[str, Any]) -> None:
        """Append a record to log.jsonl (and TensorBoard) on rank 0."""
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(rec) + "\n")
        if self._tb is not None:
            for k, v in rec.items():
                if isinstance(v, (int, float)) and k not in ("step",):
                    self._tb.add_scalar(f"{rec.get('type', 'train')}/{k}", v, rec["step"])

    def phase_breakdown(self) -> dict[str, Any]:
        """Whole-run ms per phase and shares."""
        self.timer.collect()
        tot = dict(self.timer.run_totals)
        busy = sum(tot.values()) or 1.0
        return {"ms": {k: round(tot.get(k, 0.0), 3) for k in PHASES},
                "share": {k: round(tot.get(k, 0.0) / busy, 4) for k in PHASES}}

    def close(self) -> None:
        """Flush and close the sinks."""
        if self._bar is not None:
            self._bar.close()
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
