"""Fallback and baseline loader: PIL decode + torchvision transforms in DataLoader workers, sharded by rank.

Augmentation is seeded per sample from (seed, epoch, index), so a sample looks the same whatever the
world size, worker count or resume point: the 1-rank and 2-rank runs of a test see identical pixels.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision import transforms as T

from ..errors import DataError
from .batch import Batch
from .layout import FileSet


class ShardSampler(torch.utils.data.Sampler):
    """Yields (index, epoch) of this rank's shard: a seeded global permutation, rank r takes every world-th."""

    def __init__(self, n: int, rank: int, world: int, seed: int, shuffle: bool, even: bool) -> None:
        self.n, self.rank, self.world, self.seed, self.shuffle, self.even = n, rank, world, seed, shuffle, even
        self.epoch, self.start = 0, 0

    def indices(self) -> np.ndarray:
        """This rank's sample indices for the current epoch, in order."""
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle
                 else np.arange(self.n))
        if self.even:  # equal counts on every rank: DDP needs the same number of steps everywhere
            order = order[: self.n - self.n % self.world]
        return order[self.rank :: self.world]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self.indices()[self.start :]:
            yield int(i), self.epoch

    def __len__(self) -> int:
        return len(self.indices()) - self.start


class ImageDataset(torch.utils.data.Dataset):
    """Decode + augment one image; failures come back as data so the main process can name the file."""

    def __init__(self, files: FileSet, *, train: bool, image_size: int, resize: int, min_scale: float,
                 mean: list[float], std: list[float], seed: int) -> None:
        self.files, self.train, self.size, self.resize = files, train, image_size, resize
        self.min_scale, self.mean, self.std, self.seed = min_scale, mean, std, seed

    def __len__(self) -> int:
        return len(self.files)

    def _augment(self, img: Image.Image, idx: int, epoch: int) -> Image.Image:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + epoch * 7_919 + idx) % (2**63))
            i, j, h, w = T.RandomResizedCrop.get_params(img, (self.min_scale, 1.0), (3 / 4, 4 / 3))
            flip = bool(torch.rand(()) < 0.5)
        img = TF.resized_crop(img, i, j, h, w, [self.size, self.size], antialias=True)
        return TF.hflip(img) if flip else img

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int, int, str]:
        idx, epoch = key
        path = self.files.root / self.files.files[idx]
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except Exception as e:  # PIL raises many types for corrupt files
            return torch.zeros(3, self.size, self.size), -1, idx, f"{path}: {type(e).__name__}: {e}"
        if self.train:
            img = self._augment(img, idx, epoch)
        else:
            img = TF.center_crop(TF.resize(img, self.resize, antialias=True), [self.size, self.size])
        x = TF.normalize(TF.to_tensor(img), self.mean, self.std)
        return x, self.files.labels[idx], idx, ""


class TorchvisionLoader:
    """DataLoader over a FileSet, yielding Batch on the device; resumable at batch granularity."""

    def __init__(self, files: FileSet, *, train: bool, batch_size: int, rank: int, world: int, workers: int,
                 device: torch.device, channels_last: bool, image_size: int, resize: int, min_scale: float,
                 mean: list[float], std: list[float], seed: int) -> None:
        self.dataset = ImageDataset(files, train=train, image_size=image_size, resize=resize, min_scale=min_scale,
                                    mean=mean, std=std, seed=seed)
        self.sampler = ShardSampler(len(files), rank, world, seed, shuffle=train, even=train)
        self.batch_size, self.workers, self.device = batch_size, workers, device
        self.channels_last, self.labeled = channels_last, files.labels[0] >= 0
        self.position = 0
        self.steps_per_epoch = -(-len(self.sampler.indices()) // batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for `epoch`; a restored mid-epoch position is kept when the epoch matches."""
        if epoch != self.sampler.epoch:
            self.sampler.epoch, self.position = epoch, 0

    def __iter__(self) -> Iterator[Batch]:
        self.sampler.start = self.position * self.batch_size
        dl = torch.utils.data.DataLoader(self.dataset, batch_size=self.batch_size, sampler=self.sampler,
                                         num_workers=self.workers, pin_memory=self.device.type == "cuda",
                                         persistent_workers=False,
                                         # its own generator: creating an iterator must not draw from the
                                         # global RNG, or a resumed run's dropout masks would differ
                                         generator=torch.Generator().manual_seed(self.sampler.seed))
        for x, y, idx, err in dl:
            bad = [e for e in err if e]
            if bad:
                raise DataError(f"cannot decode image {bad[0]}. Find and exclude bad files with "
                                f"`python -m darklight_dist.data scan --data-path DIR`.")
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            labels = y.to(self.device, non_blocking=True) if self.labeled else None
            self.position += 1
            yield Batch(x, labels, idx, len(idx))
        self.position = 0
        self.sampler.epoch += 1  # the next pass is the next epoch unless set_epoch says otherwise

    def state_dict(self) -> dict[str, Any]:
        """Epoch and batches consumed in it."""
        return {"epoch": self.sampler.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position."""
        self.sampler.epoch, self.position = int(state["epoch"]), int(state["position"])
