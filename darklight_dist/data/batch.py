"""The one batch contract every loader honours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional, Protocol

import torch


@dataclass
class Batch:
    """Images `[N, 3, H, W]` (normalized, on the rank's device, negotiated memory format) and labels.

    `labels` is int64 `[N]` on the device, or None for label-free data. `indices` are the
    data-set indices of the samples when the loader knows them (used by tests to prove
    sharding and resume); `valid` is the number of leading samples that count (the rest is
    padding in a last validation batch).
    """

    images: torch.Tensor
    labels: Optional[torch.Tensor]
    indices: Optional[torch.Tensor] = None
    valid: Optional[int] = None

    def __len__(self) -> int:
        return int(self.images.shape[0])


class Loader(Protocol):
    """What the trainer needs from a data backend."""

    steps_per_epoch: int
    """Number of batches one epoch yields on this rank."""

    def set_epoch(self, epoch: int) -> None:
        """Prepare the stream for `epoch` (shuffling seed)."""

    def __iter__(self) -> Iterator[Batch]:
        """Yield the batches of the current epoch, from the restored position if any."""

    def state_dict(self) -> dict[str, Any]:
        """Plain-typed position of this rank's stream (for exact resume)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position saved by `state_dict`."""
