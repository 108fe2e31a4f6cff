"""The overlap feed's stream ordering, checked against a fake of the CUDA stream API (no GPU here).

What must hold (torch.cuda semantics): the batch is fetched and the teacher enqueued with the side
stream current; the 'done' event is recorded on the side stream after the teacher; the main stream
waits on that event before the student reads the logits; every side-allocated tensor the main stream
reads is record_stream'ed to main; teacher(k+1) is enqueued only after the trainer took batch k, and
never more than one batch is fetched ahead of the one being trained (so loader state stays exact).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

from darklight_dist.data.batch import Batch
from darklight_dist.metrics import PhaseTimer
from darklight_dist.overlap import TeacherFeed, overlap_decision

LOG: list[tuple] = []


class FakeStream:
    def __init__(self, name: str) -> None:
        self.name = name

    def wait_stream(self, other: "FakeStream") -> None:
        LOG.append(("wait_stream", self.name, other.name))

    def wait_event(self, ev: "FakeEvent") -> None:
        LOG.append(("wait_event", self.name, ev.id))


class FakeEvent:
    n = 0

    def __init__(self) -> None:
        FakeEvent.n += 1
        self.id = FakeEvent.n

    def record(self, stream: FakeStream) -> None:
        LOG.append(("record", self.id, stream.name))


class FakeStreams:
    def __init__(self) -> None:
        self.main, self.cur = FakeStream("main"), None

    def current(self) -> FakeStream:
        return self.cur or self.main

    def new(self) -> FakeStream:
        return FakeStream("side")

    @contextlib.contextmanager
    def use(self, stream: FakeStream) -> Iterator[None]:
        prev, self.cur = self.cur, stream
        LOG.append(("enter", stream.name))
        yield
        LOG.append(("exit", stream.name))
        self.cur = prev

    def event(self, timing: bool = False) -> FakeEvent:
        return FakeEvent()

    def record_stream(self, t: torch.Tensor, stream: FakeStream) -> None:
        LOG.append(("record_stream", int(t.flatten()[0]), stream.name))


class FakeTimer(PhaseTimer):
    def add(self, name: str, start: Any, end: Any) -> None:  # fake events carry no time
        LOG.append(("timed", name)) if name == "teacher_overlapped" else None


def test_stream_order_one_batch_ahead() -> None:
    LOG.clear()
    streams = FakeStreams()

    def loader() -> Iterator[Batch]:
        for k in range(3):
            LOG.append(("fetch", k, streams.current().name))
            yield Batch(torch.full((2, 3, 4, 4), float(k)), torch.full((2,), 100 + k))

    def teacher(x: torch.Tensor) -> torch.Tensor:
        LOG.append(("teacher", int(x.flatten()[0]), streams.current().name))
        return torch.full((2, 10), 200 + float(x.flatten()[0]))

    feed = TeacherFeed(teacher, FakeTimer(torch.device("cpu")), overlap=True, streams=streams)
    seen = []
    for batch, ahead in feed.epoch(loader()):
        k = int(batch.images.flatten()[0])
        LOG.append(("student_takes", k))
        logits = ahead.wait()
        LOG.append(("student", k, streams.current().name))
        seen.append((k, int(logits[0, 0])))
    assert seen == [(0, 200), (1, 201), (2, 202)]

    assert LOG[0] == ("wait_stream", "side", "main")  # the side stream starts after what main has queued
    for k in range(3):
        i_fetch = LOG.index(("fetch", k, "side"))
        i_teacher = LOG.index(("teacher", k, "side"))
        done = next(e for e in LOG[i_teacher:] if e[0] == "record")
        assert done[2] == "side"
        i_done = LOG.index(done)
        i_wait = LOG.index(("wait_event", "main", done[1]))
        i_student = LOG.index(("student", k, "main"))
        assert i_fetch < i_teacher < i_done < i_wait < i_student
        for v in (k, 100 + k, 200 + k):  # images, labels, logits: used by main, allocated on side
            assert ("record_stream", v, "main") in LOG[i_teacher:i_wait]
        if k > 0:  # batch k is fetched only once the trainer has taken batch k-1: nothing else prefetched
            assert LOG.index(("student", k - 1, "main")) < i_fetch
        if k < 2:  # ...but teacher(k+1) is enqueued before the student's step k+1: it overlaps step k on the GPU
            assert LOG.index(("teacher", k + 1, "side")) < LOG.index(("student_takes", k + 1))
    assert LOG.count(("timed", "teacher_overlapped")) == 3


def test_plain_feed_yields_no_ahead_and_times_data() -> None:
    timer = PhaseTimer(torch.device("cpu"))
    feed = TeacherFeed(lambda x: x, timer, overlap=False)
    out = list(feed.epoch([Batch(torch.zeros(1, 3, 2, 2), None)] * 2))
    assert len(out) == 2 and all(a is None for _, a in out) and feed.streams is None
    assert timer.collect()["data"] >= 0.0


def test_overlap_is_off_on_cpu_and_without_teacher() -> None:
    assert overlap_decision(True, torch.device("cpu"), True)[0] is False
    assert overlap_decision(True, torch.device("cuda", 0), False)[0] is False
    assert overlap_decision(False, torch.device("cuda", 0), True)[0] is False
    assert overlap_decision(True, torch.device("cuda", 0), True) == (True, "on: teacher on a side stream, one batch ahead")
