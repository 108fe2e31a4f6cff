"""Dataset discovery: ImageFolder trees and file lists -> (files, labels, classes), torchvision's order."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import DataError

log = logging.getLogger(__name__)

IMG_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""torchvision's ImageFolder extensions, matched case-insensitively (so `.JPEG` counts)."""


@dataclass
class FileSet:
    """The samples of one split: paths relative to `root`, labels (or -1 when unlabeled), class names."""

    root: Path
    files: list[str]
    labels: list[int]
    classes: list[str]
    skipped: list[str] = field(default_factory=list)
    """Files in class folders that are not images by extension (reported, not used)."""

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, indices: "np.ndarray | list[int]") -> "FileSet":
        """The samples at `indices`, in that order."""
        return FileSet(self.root, [self.files[i] for i in indices], [self.labels[i] for i in indices],
                       self.classes, self.skipped)


def is_image_file(name: str) -> bool:
    """Whether a file name has an image extension (case-insensitive)."""
    return name.lower().endswith(IMG_EXTENSIONS)


def _images_below(folder: Path) -> tuple[list[str], list[str]]:
    images, others = [], []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        for fn in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, fn), folder)
            (images if is_image_file(fn) else others).append(rel)
    return images, others


def scan_image_folder(root: str | Path, split: str = "") -> FileSet:
    """List an ImageFolder tree: one sub-folder per class, classes sorted like torchvision."""
    root = Path(root)
    where = f"{root}" + (f" ({split})" if split else "")
    if not root.is_dir():
        raise DataError(f"data folder {where} does not exist. --data-path must hold train/ and val/, "
                        "each with one sub-folder of images per class.")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataError(f"data folder {where} has no class sub-folders. Put the images of each class in its own "
                        "folder (train/cat/1.jpg), or pass --unlabeled for a flat folder of images.")
    files, labels, skipped = [], [], []
    for idx, cls in enumerate(classes):
        imgs, others = _images_below(root / cls)
        if not imgs:
            raise DataError(f"class folder {root / cls} has no images (extensions: {', '.join(IMG_EXTENSIONS)}). "
                            "Remove the folder or add its images.")
        files += [f"{cls}/{f}" for f in imgs]
        labels += [idx] * len(imgs)
        skipped += [f"{cls}/{f}" for f in others]
    if skipped:
        log.warning("%s: %d non-image file(s) skipped, e.g. %s", where, len(skipped), skipped[0])
    return FileSet(root, files, labels, classes, skipped)


def scan_unlabeled_folder(root: str | Path) -> FileSet:
    """List every image below `root` (any depth); labels are -1."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist (--unlabeled expects a folder of images).")
    images, others = _images_below(root)
    if not images:
        raise DataError(f"data folder {root} holds no images (extensions: {', '.join(IMG_EXTENSIONS)}).")
    return FileSet(root, images, [-1] * len(images), [], others)


def read_file_list(list_path: str | Path, root: str | Path, classes: Optional[list[str]] = None) -> FileSet:
    """Read 'relative/path label' lines (the format `darklight_dist.data scan` writes)."""
    list_path, root = Path(list_path), Path(root)
    if not list_path.is_file():
        raise DataError(f"file list {list_path} does not exist.")
    files, labels = [], []
    for n, line in enumerate(list_path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        path, _, label = line.rstrip().rpartition(" ")
        if not path or not label.lstrip("-").isdigit():
            raise DataError(f"{list_path}:{n}: expected 'relative/path label', got {line!r}.")
        files.append(path)
        labels.append(int(label))
    if not files:
        raise DataError(f"file list {list_path} is empty.")
    n_classes = max(labels) + 1
    return FileSet(root, files, labels, classes or [str(i) for i in range(n_classes)])


def split_dirs(data_path: str | Path) -> tuple[Path, Path]:
    """The train/ and val/ folders of a data root, with a clear error when either is missing."""
    root = Path(data_path)
    if not root.is_dir():
        raise DataError(f"--data-path {root} does not exist.")
    missing = [s for s in ("train", "val") if not (root / s).is_dir()]
    if missing:
        raise DataError(f"--data-path {root} has no {' and no '.join(s + '/' for s in missing)} folder. "
                        "Expected DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg (torchvision's ImageFolder layout).")
    return root / "train", root / "val"


def stratified_fraction(labels: list[int], fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a seeded, per-class fraction (at least one sample of each class)."""
    if not 0.0 < fraction <= 1.0:
        raise DataError(f"--train-fraction {fraction} must be in (0, 1].")
    if fraction == 1.0:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    arr = np.asarray(labels)
    keep = []
    for c in np.unique(arr):
        idx = np.flatnonzero(arr == c)
        k = max(1, int(round(fraction * len(idx))))
        keep.append(rng.choice(idx, size=k, replace=False))
    return np.sort(np.concatenate(keep))
