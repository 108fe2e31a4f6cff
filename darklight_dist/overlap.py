"""The training feed: batches with their teacher logits, the teacher on its own CUDA stream ahead of the student.

Without overlap (CPU, or --overlap false) the feed only times the data wait and the trainer runs the
teacher inline. With overlap, for each batch k+1 the feed, on a side stream, fetches the batch (the
loader's copies and DALI's outputs land on the current stream, i.e. the side one) and enqueues the
teacher on it, right after the host has enqueued the student's step k on the main stream. The GPU then
runs teacher(k+1) on the side stream while the student trains on batch k; the main stream waits on an
event before the student reads batch k+1 and its logits. Nothing is fetched beyond the batch being
trained, so the loader's state_dict stays exact for checkpoints and no teacher work is in flight when
the trainer evaluates.

Stream rules (torch.cuda semantics): tensors allocated on the side stream and read by the main stream
get `record_stream(main)`, so the caching allocator does not hand their memory to the next side
allocation while the student still reads it; the side stream waits once per epoch for the main stream,
so nothing it reads (weights, a previous epoch's buffers) is still being written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional

import torch

from .data.batch import Batch
from .metrics import PhaseTimer


class CudaStreams:
    """The part of torch.cuda's stream API the feed uses; tests pass a fake that records the calls."""

    def current(self) -> Any:
        """The stream work is enqueued on now."""
        return torch.cuda.current_stream()

    def new(self) -> Any:
        """A fresh non-default stream."""
        return torch.cuda.Stream()

    def use(self, stream: Any) -> Any:
        """Context manager making `stream` current."""
        return torch.cuda.stream(stream)

    def event(self, timing: bool = False) -> Any:
        """A CUDA event."""
        return torch.cuda.Event(enable_timing=timing)

    def record_stream(self, tensor: torch.Tensor, stream: Any) -> None:
        """Tell the allocator a device tensor is also used on `stream` (host tensors need nothing)."""
        if tensor.is_cuda:
            tensor.record_stream(stream)


@dataclass
class Ahead:
    """Teacher logits enqueued on the side stream, and the event that says they are done."""

    logits: torch.Tensor
    done: Any
    streams: CudaStreams

    def wait(self) -> torch.Tensor:
        """Make the current (main) stream wait for the teacher; no host sync."""
        main = self.streams.current()
        main.wait_event(self.done)
        return self.logits


def overlap_decision(requested: bool, device: torch.device, has_teacher: bool) -> tuple[bool, str]:
    """Whether the teacher runs ahead on its own stream, and why (or why not)."""
    if not has_teacher:
        return False, "off: no teacher"
    if device.type != "cuda":
        return False, "off: CPU (one stream; the teacher and the student share the cores anyway)"
    if not requested:
        return False, "off: --overlap false"
    return True, "on: teacher on a side stream, one batch ahead"


class TeacherFeed:
    """Yields (batch, ahead): `ahead` is None when the trainer must run the teacher itself."""

    def __init__(self, teacher: Optional[Callable[[torch.Tensor], torch.Tensor]], timer: PhaseTimer, *,
                 overlap: bool, streams: Optional[CudaStreams] = None) -> None:
        self.teacher, self.timer, self.overlap = teacher, timer, overlap and teacher is not None
        self.streams = streams or (CudaStreams() if self.overlap else None)
        self.side = self.streams.new() if self.overlap else None

    def epoch(self, loader: Iterable[Batch]) -> Iterator[tuple[Batch, Optional[Ahead]]]:
        """One pass over `loader`."""
        return self._ahead(loader) if self.overlap else self._plain(loader)

    def _plain(self, loader: Iterable[Batch]) -> Iterator[tuple[Batch, Optional[Ahead]]]:
        it = iter(loader)
        while True:
            with self.timer.phase("data"):
                batch = next(it, None)
            if batch is None:
                return
            yield batch, None

    def _ahead(self, loader: Iterable[Batch]) -> Iterator[tuple[Batch, Optional[Ahead]]]:
        s = self.streams
        main = s.current()
        self.side.wait_stream(main)  # once per epoch: the side stream starts after everything already queued
        it = iter(loader)
        while True:
            with self.timer.phase("data"):
                with s.use(self.side):
                    batch = next(it, None)
            if batch is None:
                return
            with self.timer.phase("teacher"):  # host enqueue only; the main stream does not wait here
                ahead = self._launch(batch, main)
            yield batch, ahead

    def _launch(self, batch: Batch, main: Any) -> Ahead:
        """Enqueue the teacher on the side stream; mark the batch's tensors as used by the main stream."""
        s = self.streams
        with s.use(self.side):
            start = s.event(timing=True)
            start.record(self.side)
            logits = self.teacher(batch.images)
            done = s.event(timing=True)
            done.record(self.side)
        self.timer.add("teacher_overlapped", start, done)  # GPU time of the teacher, hidden or not (an extra)
        for t in (batch.images, batch.labels, logits):
            if isinstance(t, torch.Tensor):
                s.record_stream(t, main)
        return Ahead(logits, done, s)
