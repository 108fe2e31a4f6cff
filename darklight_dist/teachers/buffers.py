"""Persistent, 256-byte-aligned teacher buffers: input staging and a ring of output buffers."""

from __future__ import annotations

import math

import torch

ALIGNMENT = 256
"""TensorRT requires device pointers aligned to 256 bytes (NvInferRuntime.h, setTensorAddress)."""


def is_aligned(t: torch.Tensor, alignment: int = ALIGNMENT) -> bool:
    """True when the tensor's first element sits on an `alignment`-byte boundary."""
    return t.data_ptr() % alignment == 0


def aligned_empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, *,
                  channels_last: bool = False) -> torch.Tensor:
    """An uninitialized tensor whose data pointer is 256-byte aligned.

    CUDA's caching allocator already returns 512-byte blocks, but the CPU allocator only
    promises 64 bytes, so over-allocate and offset (the fake TensorRT runs on CPU memory).
    `channels_last` (4-D only) gives a logical NCHW tensor with NHWC memory.
    """
    numel = math.prod(shape)
    elt = torch.empty((), dtype=dtype).element_size()
    flat = torch.empty(numel + ALIGNMENT // elt, dtype=dtype, device=device)
    offset = (-flat.data_ptr() % ALIGNMENT) // elt
    base = flat[offset:offset + numel]
    if channels_last:
        n, c, h, w = shape
        return base.view(n, h, w, c).permute(0, 3, 1, 2)
    return base.view(shape)


class GrowingBuffer:
    """A persistent buffer with a batch dimension: grows when a larger batch comes, else reused.

    `get(n)` returns the first n rows; slicing the batch dimension keeps the start pointer,
    hence the alignment, and keeps the memory format contiguous.
    """

    def __init__(self, tail: tuple[int, ...], dtype: torch.dtype, device: torch.device, *,
                 channels_last: bool = False) -> None:
        self.tail, self.dtype, self.device, self.channels_last = tail, dtype, device, channels_last
        self.capacity = 0
        self.allocations = 0
        self._buf: torch.Tensor | None = None

    def get(self, n: int) -> torch.Tensor:
        """A view of n rows (aligned, contiguous in the buffer's memory format)."""
        if self._buf is None or n > self.capacity:
            self._buf = aligned_empty((n, *self.tail), self.dtype, self.device, channels_last=self.channels_last)
            self.capacity = n
            self.allocations += 1
        return self._buf[:n]


class OutputRing:
    """Two output buffers used in turn.

    A teacher returns a view of persistent memory (no allocation per step); with two buffers
    the logits of one call stay valid through the next call, which is what running the
    teacher one batch ahead needs. Keep logits longer than that? `.clone()` them.
    """

    def __init__(self, tail: tuple[int, ...], dtype: torch.dtype, device: torch.device, size: int = 2) -> None:
        self._bufs = [GrowingBuffer(tail, dtype, device) for _ in range(size)]
        self._next = 0

    def get(self, n: int) -> torch.Tensor:
        """The next buffer in turn, viewed as n rows."""
        buf = self._bufs[self._next]
        self._next = (self._next + 1) % len(self._bufs)
        return buf.get(n)

    @property
    def allocations(self) -> int:
        """How many times any buffer was (re)allocated: stays flat in steady state."""
        return sum(b.allocations for b in self._bufs)
