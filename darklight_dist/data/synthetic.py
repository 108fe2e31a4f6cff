"""Random batches for benchmarks and tests: no decode, no disk, deterministic per (seed, epoch, step)."""

from __future__ import annotations

from typing import Any, Iterator

import torch

from .batch import Batch


class SyntheticLoader:
    """`size` images per epoch split over ranks; images are generated on the host then moved once."""

    def __init__(self, *, size: int, batch_size: int, image_size: int, num_classes: int, rank: int, world: int,
                 device: torch.device, channels_last: bool, seed: int, labeled: bool = True) -> None:
        self.batch_size, self.image_size, self.num_classes = batch_size, image_size, num_classes
        self.rank, self.device, self.channels_last, self.seed, self.labeled = rank, device, channels_last, seed, labeled
        self.steps_per_epoch = max(1, size // world // batch_size)
        self.epoch, self.position = 0, 0

    def set_epoch(self, epoch: int) -> None:
        """Move to `epoch` (keeps a restored position within the same epoch)."""
        if epoch != self.epoch:
            self.epoch, self.position = epoch, 0

    def __iter__(self) -> Iterator[Batch]:
        for step in range(self.position, self.steps_per_epoch):
            g = torch.Generator().manual_seed(hash((self.seed, self.epoch, step, self.rank)) % (2**63))
            x = torch.randn(self.batch_size, 3, self.image_size, self.image_size, generator=g).to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, self.num_classes, (self.batch_size,), generator=g).to(self.device)
            self.position = step + 1
            yield Batch(x, y if self.labeled else None, None, self.batch_size)
        self.position, self.epoch = 0, self.epoch + 1

    def state_dict(self) -> dict[str, Any]:
        """Epoch and batches consumed."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position."""
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
