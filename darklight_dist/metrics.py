"""Phase timers and sinks (progress bar, log.jsonl, TensorBoard); only rank 0 writes.

The logger decides its own interval (`maybe_log`), so the training loop only reports what happened.
Loss parts are accumulated as device tensors and read back at log time only: no per-step host sync.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch

from .memory import MemorySampler

__all__ = ["PHASES", "PhaseTimer", "MetricLogger", "ddp_split_hook"]

PHASES: tuple[str, ...] = ("data", "teacher", "student", "allreduce", "optimizer", "other")
"""Data wait, teacher forward, student forward+backward, the all-reduce left after the backward (the part DDP
could not hide), optimizer step, and everything else between steps (logging, bookkeeping): together, the step."""


class PhaseTimer:
    """Wall time per phase, contiguous: each phase starts where the last one ended, the gap is "other".

    CPU: perf_counter. GPU: CUDA events on the current stream, read lazily in `collect` (no host sync per
    step); a GPU phase is then the time the stream spent between the two marks, so "data" is how long the
    GPU starved for input, not how long the host waited. Because every interval is attributed to exactly
    one phase, the phases add up to the wall time between steps by construction.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.totals: dict[str, float] = defaultdict(float)  # ms, since the last `collect`
        self.run_totals: dict[str, float] = defaultdict(float)  # ms, whole run
        self._pending: list[tuple[str, Any, Any]] = []
        self._mark: Any = None  # end of the last phase: a perf_counter value or a CUDA event
        self._split: Any = None  # set by `split()` inside a phase with a tail

    def now(self) -> Any:
        """A time mark: perf_counter seconds on CPU, a recorded CUDA event on GPU."""
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def add(self, name: str, start: Any, end: Any) -> None:
        """Attribute the interval between two marks to `name` (names outside PHASES are logged as extras)."""
        if self.cuda:
            self._pending.append((name, start, end))
        else:
            self.totals[name] += (end - start) * 1e3

    @contextmanager
    def phase(self, name: str, tail: Optional[str] = None) -> Iterator[None]:
        """Time the block as `name`; if `split()` is called inside, the time after the split goes to `tail`."""
        start = self.close_gap()
        self._split = None
        try:
            yield
        finally:
            end = self.now()
            split, self._split = self._split, None
            if tail is not None and split is not None:
                self.add(name, start, split)
                self.add(tail, split, end)
            else:
                self.add(name, start, end)
            self._mark = end

    def start(self) -> None:
        """Begin the contiguous timeline now (what comes before the first phase is "other")."""
        self._mark = self.now()

    def split(self) -> None:
        """Mark where the enclosing phase's tail begins (the DDP comm hook calls it per bucket; the last wins)."""
        self._split = self.now()

    @contextmanager
    def excluded(self) -> Iterator[None]:
        """A block that belongs to no step (evaluation, checkpoint): the next "other" starts after it.

        The time since the last phase (logging, the stop and finiteness checks before the block) is
        still "other": the step time counts it, so the phases must too.
        """
        self.close_gap()
        self._mark = None
        try:
            yield
        finally:
            self._mark = self.now()

    def close_gap(self) -> Any:
        """Book the time since the last phase ended as "other" and restart the gap here; returns now."""
        now = self.now()
        if self._mark is not None:
            self.add("other", self._mark, now)
            self._mark = now
        return now

    def collect(self) -> dict[str, float]:
        """Milliseconds per phase (and extras) since the last call (synchronizes on the recorded events only)."""
        for name, start, end in self._pending:
            end.synchronize()
            self.totals[name] += start.elapsed_time(end)
        self._pending.clear()
        out = {k: self.totals.get(k, 0.0) for k in PHASES}
        out.update({k: v for k, v in self.totals.items() if k not in out})
        for k, v in out.items():
            self.run_totals[k] += v
        self.totals.clear()
        return out


def ddp_split_hook(timer: Callable[[], PhaseTimer]) -> Callable[[Any, Any], Any]:
    """A DDP comm hook: the default all-reduce (sum, divide by the world size) that marks each bucket's launch.

    DDP launches a bucket's all-reduce as soon as its gradients are ready; the last launch is where the
    backward compute ends, and what remains of the phase is all-reduce the backward could not hide.
    `timer` is a getter: the hook outlives one `train()` call's logger.
    """
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    def hook(state, bucket):  # type: ignore[no-untyped-def]  # DDP rejects any annotation but dist.GradBucket
        timer().split()
        return allreduce_hook(state, bucket)

    return hook


class MetricLogger:
    """Accumulates step results; every `every` steps writes one JSON line and updates the bar (rank 0)."""

    def __init__(self, output_dir: str | Path, *, is_main: bool, every: int, total_steps: int, start_step: int,
                 device: torch.device, world_size: int, progress: bool = True, tensorboard: bool = False) -> None:
        self.is_main, self.every, self.world_size = is_main, max(1, every), world_size
        self.timer = PhaseTimer(device)
        self.device = device
        self.memory = MemorySampler().start()  # every rank: summary.json has each rank's peak
        self._sums: dict[str, torch.Tensor] = {}
        self._count, self._images, self._t0, self._excluded_s = 0, 0, time.perf_counter(), 0.0
        self.timer.start()  # the wall clock and the phases start together: set-up before step 1 is "other"
        self.images_seen, self.steps_timed = 0, 0
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
        self.steps_timed += 1
        self._images += n_images
        self.images_seen += n_images * self.world_size

    @contextmanager
    def excluded(self) -> Iterator[None]:
        """Evaluation or checkpointing: timed by no phase and left out of step_ms and images/s."""
        t0 = time.perf_counter()
        with self.timer.excluded():
            yield
        self._excluded_s += time.perf_counter() - t0

    def maybe_log(self, step: int, epoch: int, lr: float, *, force: bool = False) -> Optional[dict[str, Any]]:
        """Write a record if `step` is on the interval (or forced); returns it."""
        if self._count == 0 or not (force or step % self.every == 0):
            return None
        now = time.perf_counter()  # the log's own cost falls in the next interval, for the phases as for the wall
        self.timer.close_gap()  # book "other" up to this instant (e.g. the stop check's wait), not into the next record
        phases = self.timer.collect()
        elapsed = max(now - self._t0 - self._excluded_s, 1e-9)
        rec: dict[str, Any] = {"type": "train", "step": step, "epoch": epoch, "lr": lr}
        rec.update({k: float(v) / self._count for k, v in self._sums.items()})  # the one host sync per log
        rec["images_per_s"] = self._images * self.world_size / elapsed
        rec["step_ms"] = elapsed * 1e3 / self._count
        rec.update({f"{k}_ms": v / self._count for k, v in phases.items()})
        busy = sum(phases[k] for k in PHASES)
        rec.update({f"{k}_share": (phases[k] / busy if busy else 0.0) for k in PHASES})
        rec["host_rss_mb"] = round(self.memory.peak_rss_mb, 1)  # the peak so far, from the sampler thread
        self._sums, self._count, self._images, self._t0, self._excluded_s = {}, 0, 0, now, 0.0
        self.last_record = rec
        self.write(rec)
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{rec['loss']:.4f}", img_s=f"{rec['images_per_s']:.0f}",
                                  teacher=f"{100 * rec['teacher_share']:.0f}%",
                                  data=f"{100 * rec['data_share']:.0f}%", refresh=False)
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
        """Whole-run ms per phase, per step and shares (extras such as overlapped teacher time listed apart)."""
        self.timer.collect()
        tot = dict(self.timer.run_totals)
        busy = sum(tot.get(k, 0.0) for k in PHASES) or 1.0
        out: dict[str, Any] = {"ms": {k: round(tot.get(k, 0.0), 3) for k in PHASES},
                               "share": {k: round(tot.get(k, 0.0) / busy, 4) for k in PHASES},
                               "per_step_ms": {k: round(tot.get(k, 0.0) / max(self.steps_timed, 1), 3) for k in PHASES}}
        extras = {k: round(v, 3) for k, v in tot.items() if k not in PHASES}
        if extras:
            out["extra_ms"] = extras
        return out

    def close(self) -> dict[str, float]:
        """Flush and close the sinks, stop the memory sampler; returns this rank's memory peaks."""
        peaks = self.memory.stop()
        if self._bar is not None:
            self._bar.close()
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
        return peaks
