"""WebDataset tar shards for data sets too big for one folder tree: writer, DALI index files, reader source.

Layout written by `python -m darklight_dist.data shards` (and read back here):

    OUT/darklight_shards.json      classes, and per split: tar names, labels in sample-id order
    OUT/train/shard-000000.tar     members 000000042.jpg, 000000042.cls (ASCII label), 000000042.sid
    OUT/train/shard-000000.idx     DALI's index (format v1.2, as `wds2idx` writes it)
    OUT/val/...

`.sid` holds the sample's id (its index in the split, ImageFolder order) as little-endian
int64: the loader maps ids to labels and reports them as `Batch.indices`. Train samples are
written in a seeded random order, because DALI's tar reader only shuffles inside a buffer.
"""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import DataError
from .dali_pipeline import INDEX_EXT, TarSource
from .layout import FileSet, scan_image_folder, scan_unlabeled_folder, split_dirs

MANIFEST = "darklight_shards.json"
FORMAT = "darklight-wds-1"


@dataclass
class WebDatasetSplit:
    """One split of a sharded data set: tar files, their DALI index files, labels by sample id."""

    root: Path
    tar_paths: list[str]
    index_paths: list[str]
    labels: list[int]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def tar_source(self) -> TarSource:
        """The reader-side description used by the DALI pipeline."""
        return TarSource(tuple(self.tar_paths), tuple(self.index_paths), len(self.labels))


def is_webdataset_dir(path: str | Path) -> bool:
    """Whether `path` holds shards written by `darklight_dist.data shards` (a manifest file)."""
    return (Path(path) / MANIFEST).is_file()


def load_webdataset(path: str | Path, split: str) -> WebDatasetSplit:
    """Read one split ("train" or "val") of a sharded data set, checking every tar and index exists."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path / MANIFEST} ({e}); rewrite the shards with "
                        "`python -m darklight_dist.data shards`.") from None
    if manifest.get("format") != FORMAT:
        raise DataError(f"{path / MANIFEST} has format {manifest.get('format')!r}, expected {FORMAT!r}.")
    if split not in manifest["splits"]:
        raise DataError(f"{path} has no {split} shards (found: {', '.join(manifest['splits'])}).")
    entry = manifest["splits"][split]
    tars = [str(path / split / t) for t in entry["tars"]]
    idxs = [t[: -len(".tar")] + ".idx" for t in tars]
    missing = [p for p in tars + idxs if not os.path.isfile(p)]
    if missing:
        raise DataError(f"{len(missing)} shard file(s) missing, e.g. {missing[0]}; rewrite the shards with "
                        "`python -m darklight_dist.data shards`.")
    return WebDatasetSplit(path / split, tars, idxs, list(entry["labels"]), list(manifest["classes"]))


def write_index(tar_path: str | Path, idx_path: str | Path) -> int:
    """Write DALI's index (v1.2) for a tar: one line per sample, 'ext offset size name' per component."""
    samples: list[list[str]] = []
    last = None
    with tarfile.open(tar_path) as tar:
        for m in tar:
            if not m.isreg():
                continue
            base, _, ext = m.name.partition(".")  # like wds2idx: the key ends at the first dot
            if base != last:
                samples.append([])
                last = base
            samples[-1].append(f"{ext} {m.offset_data} {m.size} {m.name}")
    if not samples:
        raise DataError(f"{tar_path} holds no samples.")
    with open(idx_path, "w") as f:
        f.write(f"v1.2 {len(samples)}\n")
        f.writelines(" ".join(s) + "\n" for s in samples)
    return len(samples)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _write_split(files: FileSet, out: Path, order: np.ndarray, shard_size: int,
                 progress: Callable[[int], None]) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    tars = []
    for start in range(0, len(order), shard_size):
        name = f"shard-{start // shard_size:06d}.tar"
        tmp = out / (name + ".partial")
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for sid in order[start:start + shard_size]:
                rel = files.files[sid]
                ext = os.path.splitext(rel)[1].lower().lstrip(".")
                key = f"{int(sid):09d}"
                with open(files.root / rel, "rb") as f:
                    _add(tar, f"{key}.{ext}", f.read())
                _add(tar, f"{key}.cls", str(files.labels[sid]).encode())
                _add(tar, f"{key}.{INDEX_EXT}", np.int64(sid).astype("<i8").tobytes())
                progress(1)
        os.replace(tmp, out / name)
        write_index(out / name, out / (name[: -len(".tar")] + ".idx"))
        tars.append(name)
    return tars


def write_shards(data_path: str | Path, out: str | Path, shard_size: int, *, seed: int = 0, unlabeled: bool = False,
                 progress: Optional[Callable[[int], None]] = None) -> dict:
    """ImageFolder train/ and val/ -> tar shards + DALI index files + manifest; returns the manifest."""
    if shard_size < 1:
        raise DataError(f"--shard-size must be at least 1, got {shard_size}.")
    train_dir, val_dir = split_dirs(data_path)
    out = Path(out)
    if (out / MANIFEST).exists():
        raise DataError(f"{out} already holds shards ({MANIFEST}); choose an empty --out folder.")
    val = scan_image_folder(val_dir, "val")
    train = scan_unlabeled_folder(train_dir) if unlabeled else scan_image_folder(train_dir, "train")
    classes = val.classes if unlabeled else train.classes
    progress = progress or (lambda n: None)
    splits = {}
    for name, fs, order in (("train", train, np.random.default_rng(seed).permutation(len(train))),
                            ("val", val, np.arange(len(val)))):
        tars = _write_split(fs, out / name, order, shard_size, progress)
        splits[name] = {"tars": tars, "labels": [int(x) for x in fs.labels], "files": fs.files}
    manifest = {"format": FORMAT, "classes": classes, "source": str(Path(data_path).resolve()), "splits": splits}
    tmp = out / (MANIFEST + ".partial")
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, out / MANIFEST)  # the manifest appears last: its presence means the shards are complete
    return manifest
