"""Stream ordering (CUDA calls stubbed: no GPU here) and the aligned persistent buffers."""

from __future__ import annotations

import contextlib
from unittest import mock

import pytest
import torch

from darklight_dist.teachers.buffers import ALIGNMENT, GrowingBuffer, OutputRing, aligned_empty
from darklight_dist.teachers.streams import HOST_STREAM_HANDLE, SideStream


def test_cpu_side_stream_is_a_nonzero_token():
    side = SideStream(torch.device("cpu"))
    with side.ordered() as handle:
        assert handle == HOST_STREAM_HANDLE != 0


def test_cuda_side_stream_orders_both_ways(monkeypatch):
    """The call sequence on CUDA, with torch.cuda stubbed (the real one runs in tests/gpu)."""
    calls = []
    side_stream = mock.Mock(cuda_stream=0xABC)
    side_stream.wait_stream.side_effect = lambda s: calls.append(("side waits", s))
    current = mock.Mock()
    current.wait_stream.side_effect = lambda s: calls.append(("current waits", s))
    monkeypatch.setattr(torch.cuda, "Stream", lambda device: side_stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: current)

    @contextlib.contextmanager
    def on(stream):
        calls.append(("enter", stream))
        yield
        calls.append(("exit", stream))

    monkeypatch.setattr(torch.cuda, "stream", on)
    tensor = mock.Mock()
    tensor.record_stream.side_effect = lambda s: calls.append(("record", s))
    side = SideStream(torch.device("cuda", 0))
    with side.ordered(tensor) as handle:
        calls.append(("enqueue", handle))
    assert handle == 0xABC
    assert calls == [("side waits", current), ("enter", side_stream), ("enqueue", 0xABC), ("exit", side_stream),
                     ("current waits", side_stream), ("record", side_stream)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_aligned_empty(dtype, channels_last):
    for n in (1, 3, 7):
        t = aligned_empty((n, 3, 5, 7), dtype, torch.device("cpu"), channels_last=channels_last)
        assert t.data_ptr() % ALIGNMENT == 0 and t.shape == (n, 3, 5, 7)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        assert t.is_contiguous(memory_format=fmt)


def test_growing_buffer_and_ring():
    buf = GrowingBuffer((3, 4, 4), torch.float32, torch.device("cpu"))
    a = buf.get(4)
    assert buf.get(2).data_ptr() == a.data_ptr() and buf.allocations == 1
    assert buf.get(8).shape[0] == 8 and buf.allocations == 2
    ring = OutputRing((10,), torch.float32, torch.device("cpu"))
    first, second, third = ring.get(4), ring.get(4), ring.get(4)
    assert first.data_ptr() != second.data_ptr() and third.data_ptr() == first.data_ptr()
