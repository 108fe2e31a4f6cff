"""Atomic file publication: readers see the old file or the new one, never half of either."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import torch


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_file(obj: Any, path: Path) -> None:
    """torch.save + fsync, in place (for files inside a folder that is itself renamed into place)."""
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def _publish(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)  # atomic on POSIX
    fsync_dir(path.parent)


def atomic_write(path: Path, data: Union[bytes, str]) -> None:
    """Write to a temporary file beside `path`, fsync, rename over `path`, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    _publish(tmp, path)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(obj, tmp)
    _publish(tmp, path)
