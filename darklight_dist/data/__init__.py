"""Everything that yields Batch(images, labels) on the device: discovery, backend choice, loaders."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


from ..config import Config
from ..distributed import DistEnv
from ..errors import ConfigError, DataError
from .batch import Batch, Loader
from .builtin import resolve_data_path
from .layout import FileSet, read_file_list, scan_image_folder, scan_unlabeled_folder, split_dirs, stratified_fraction
from .synthetic import SyntheticLoader
from .torchvision import TorchvisionLoader
from .webdataset import is_webdataset_dir, load_webdataset

log = logging.getLogger(__name__)

__all__ = ["Batch", "Loader", "DataBundle", "build_loaders", "discover"]


@dataclass
class DataBundle:
    """The train and val loaders of a run and what they were built from."""

    train: Loader
    val: Optional[Loader]
    num_classes: int
    classes: list[str]
    backend: str
    reason: str
    train_size: int
    val_size: int


def discover(cfg: Config) -> tuple[Optional[FileSet], FileSet]:
    """Resolve --data-path / file lists into the train and val FileSets (train_fraction applied)."""
    d = cfg.data
    if not d.data_path:
        raise ConfigError("--data-path is required: a folder with train/ and val/ inside (one sub-folder per "
                          "class), or builtin:digits for the embedded demo dataset.")
    root = Path(resolve_data_path(d.data_path))
    if is_webdataset_dir(root):
        if d.train_fraction != 1.0 or d.train_list or d.val_list:
            raise ConfigError(f"--data-path {root} holds WebDataset shards: --train-fraction, --train-list and "
                              "--val-list do not apply to shards.")
        return load_webdataset(root, "train"), load_webdataset(root, "val")  # type: ignore[return-value]
    train_dir, val_dir = (root / "train", root / "val") if (d.train_list and d.val_list) else split_dirs(root)
    val = read_file_list(d.val_list, root) if d.val_list else scan_image_folder(val_dir, "val")
    if d.unlabeled:
        train = scan_unlabeled_folder(train_dir)
        if d.train_fraction != 1.0:
            raise ConfigError("--train-fraction selects labeled samples per class; it does not apply to --unlabeled.")
        return train, val
    train = read_file_list(d.train_list, root, val.classes) if d.train_list else scan_image_folder(train_dir, "train")
    if not d.val_list and train.classes != val.classes:
        raise DataError(f"train/ and val/ of {root} have different class folders "
                        f"({len(train.classes)} vs {len(val.classes)}); they must match one to one.")
    return train.subset(stratified_fraction(train.labels, d.train_fraction, cfg.run.seed)), val


def choose_backend(requested: str, webdataset: bool = False) -> tuple[str, str]:
    """The data backend to use and why."""
    from .dali import dali_available

    if requested != "auto":
        if webdataset and requested != "dali":
            raise ConfigError("WebDataset shards are read by DALI only: use --data-backend dali (or auto).")
        return requested, f"{requested} requested"
    if dali_available():
        return "dali", "auto: DALI is importable (decode and augment in its pipeline)"
    if webdataset:
        raise ConfigError("WebDataset shards need NVIDIA DALI: pip install nvidia-dali-cuda120.")
    return "torchvision", "auto: DALI is not importable; torchvision DataLoader"


def build_loaders(cfg: Config, env: DistEnv, *, num_classes_hint: Optional[int] = None) -> DataBundle:
    """Build this rank's train and val loaders in the layout the student prefers."""
    d, b = cfg.data, cfg.optim.batch_size
    webdataset = bool(d.data_path) and d.backend != "synthetic" and is_webdataset_dir(resolve_data_path(d.data_path))
    backend, why = choose_backend(d.backend, webdataset)
    common = dict(rank=env.rank, world=env.world_size, device=env.device, channels_last=cfg.run.channels_last)
    if backend == "synthetic":
        n = cfg.student.num_classes or num_classes_hint or 1000
        mk = lambda size, seed: SyntheticLoader(size=size, batch_size=b, image_size=d.image_size, num_classes=n,
                                                seed=seed, **common)
        return DataBundle(mk(d.synthetic_size, cfg.run.seed), mk(max(b, d.synthetic_size // 4), cfg.run.seed + 1),
                          n, [str(i) for i in range(n)], backend, why, d.synthetic_size, d.synthetic_size // 4)
    train_files, val_files = discover(cfg)
    if backend == "dali":
        from .dali import build_dali_loaders

        train, val = build_dali_loaders(cfg, rank=env.rank, world_size=env.world_size, local_rank=env.local_rank,
                                        device=env.device, train_files=train_files, val_files=val_files,
                                        layout="nhwc" if cfg.run.channels_last else "nchw")
        return _bundle(train, val, train_files, val_files, backend, why, env)
    tv = dict(batch_size=b, workers=d.workers, image_size=d.image_size, resize=d.val_resize_size,
              min_scale=d.min_scale, mean=d.mean, std=d.std, seed=cfg.run.seed, **common)
    return _bundle(TorchvisionLoader(train_files, train=True, **tv), TorchvisionLoader(val_files, train=False, **tv),
                   train_files, val_files, backend, why, env)


def _bundle(train: Loader, val: Loader, train_files: FileSet, val_files: FileSet, backend: str, why: str,
            env: DistEnv) -> DataBundle:
    if train.steps_per_epoch == 0:
        raise DataError(f"the training set has {len(train_files)} images: too few for {env.world_size} rank(s).")
    num_classes = len(val_files.classes)
    log.info("data: %s (%s); train %d images, val %d, %d classes, %d steps/epoch per rank", backend, why,
             len(train_files), len(val_files), num_classes, train.steps_per_epoch)
    return DataBundle(train, val, num_classes, val_files.classes, backend, why, len(train_files), len(val_files))
