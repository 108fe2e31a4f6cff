"""A teacher's own stream, ordered against torch's current stream (no host sync, no pycuda)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

HOST_STREAM_HANDLE = 0x5EED
"""Stream handle used on a CPU device. Only the fake TensorRT in tests/ runs there; it refuses
handle 0 exactly like the real backend must never pass torch's default stream."""


class SideStream:
    """On CUDA a dedicated `torch.cuda.Stream` (never the default stream, handle 0); on CPU a token.

    `with side.ordered(tensors): enqueue(side.handle)` makes the side stream wait for work
    already queued on the current stream (the producer of the inputs), then makes the current
    stream wait for the side stream, and marks the tensors as used by it so the caching
    allocator does not hand their memory out early. The host never blocks.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        if device.type == "cuda":
            self.stream: torch.cuda.Stream | None = torch.cuda.Stream(device=device)
            self.handle = int(self.stream.cuda_stream)
        else:
            self.stream = None
            self.handle = HOST_STREAM_HANDLE

    @contextmanager
    def ordered(self, *tensors: torch.Tensor) -> Iterator[int]:
        """Order the enclosed enqueue after the current stream's work and before its later work."""
        if self.stream is None:
            yield self.handle
            return
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            yield self.handle
        current.wait_stream(self.stream)
        for t in tensors:
            t.record_stream(self.stream)
