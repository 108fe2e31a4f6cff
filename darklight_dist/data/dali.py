"""DALI loaders: sharded, checkpointable train/val streams that yield Batch with zero-copy images.

Epoch semantics (the same on every rank, as DDP needs equal step counts):

- Each rank reads shard `rank` of `world_size` every epoch (stick_to_shard): shards are
  disjoint and together cover the data set. The train list is permuted once with `--seed`
  (identically on all ranks) before sharding, so each shard is a class-balanced random
  subset; DALI's reader shuffles again inside a buffer each epoch with a per-rank seed.
- Train: every rank takes `m = floor(N / world_size)` samples per epoch (the smallest
  shard), in `steps_per_epoch = ceil(m / batch)` batches; the last batch is cut to its real
  samples (a view, no copy), so it has the same size on every rank. This is the torchvision
  loader's policy too, so both backends run the same steps. A rank whose shard holds m + 1
  drops one sample per epoch (a different one each epoch, as the shard is reshuffled). The
  rest of the reader epoch (DALI's padding) is read and dropped, so the next epoch starts
  on a fresh reader epoch.
- Val: `steps_per_epoch = ceil(largest shard / batch)` on every rank; DALI pads smaller
  shards by repeating their last sample, and each Batch's `valid` says how many leading
  samples are real, so every validation image counts exactly once across ranks.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Union

import numpy as np
import torch

from ..errors import ShardDataError, CheckpointError, ConfigError, DataError
from .batch import Batch
from .dali_pipeline import (FileSource, GraphSpec, TarSource, build_pipeline, reader_batches_per_epoch,
                            shard_bounds)
from .layout import FileSet
from .webdataset import WebDatasetSplit

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)

STATE_VERSION = 1

Split = Union[FileSet, WebDatasetSplit]


def dali_available() -> bool:
    """Whether NVIDIA DALI can be imported (the `auto` data backend then picks it)."""
    try:
        import nvidia.dali  # noqa: F401
        import nvidia.dali.plugin.pytorch  # noqa: F401
    except Exception:  # a broken install (missing CUDA libs) is as good as absent
        return False
    return True


def resolve_decode(requested: str, device: torch.device) -> str:
    """Where JPEGs are decoded: always "cpu" on a CPU device; on CUDA, `auto` means "mixed"."""
    if device.type != "cuda":
        if requested == "mixed":
            log.warning("--dali-decode mixed needs a GPU; decoding on the CPU on device %s", device)
        return "cpu"
    return "mixed" if requested == "auto" else requested


def dali_to_torch(output: Any, layout: str) -> torch.Tensor:
    """A DALI batch as an NCHW-shaped torch tensor that shares DALI's memory (DLPack, no copy).

    `layout` "nhwc": DALI wrote HWC, so the permuted view is NCHW-shaped in channels_last memory.
    """
    # as_tensor() is a view of a contiguous batch; torch.from_dlpack on a GPU tensor passes torch's
    # current stream and DALI makes that stream wait for the batch (no host synchronization).
    t = torch.from_dlpack(output.as_tensor())
    return t.permute(0, 3, 1, 2) if layout == "nhwc" else t


_FAILED_SAMPLE = re.compile(r"Failed to decode sample[^:]*:\s*(.+)")
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"BM", b"II*\x00", b"MM\x00*", b"RIFF", b"P1", b"P2", b"P3", b"P4", b"P5",
          b"P6")
SUSPECT_BUDGET_S = 30.0
"""Time the error path may spend looking for the file DALI did not name."""


def _suspect(path: str) -> Optional[str]:
    """Why a file looks undecodable from its first and last bytes, or None (cheap: two small reads)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            f.seek(max(0, os.path.getsize(path) - 64))
            tail = f.read().rstrip(b"\x00\r\n ")
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if not head.startswith(_MAGIC):
        return "not an image"
    if head.startswith(b"\xff\xd8") and not tail.endswith(b"\xff\xd9"):
        return "truncated JPEG (no end marker)"
    if head.startswith(b"\x89PNG") and b"IEND" not in tail:
        return "truncated PNG (no IEND chunk)"
    return None


def find_suspects(paths: list[str], limit: int = 5, budget_s: float = SUSPECT_BUDGET_S) -> tuple[list[str], bool]:
    """Up to `limit` 'path (reason)' strings, and whether every path was checked within the time budget."""
    found, start = [], time.monotonic()
    for k, p in enumerate(paths):
        why = _suspect(p)
        if why:
            found.append(f"{p} ({why})")
            if len(found) >= limit:
                return found, True
        if k % 256 == 0 and time.monotonic() - start > budget_s:
            return found, False
    return found, True


class DaliLoader:
    """One rank's DALI stream (train or val), yielding `Batch` on the rank's device."""

    def __init__(self, spec: GraphSpec, labels: Optional[torch.Tensor], layout: str, data_root: Path,
                 fingerprint: str = ""):
        self.spec = spec
        self.fingerprint = fingerprint
        self.layout = layout
        self._labels = labels
        self._data_root = data_root
        n = len(spec.source)
        if n < spec.num_shards:
            what = "training" if spec.train else "validation"
            raise DataError(f"the {what} set has {n} image(s), fewer than the {spec.num_shards} ranks reading it: "
                            "add images or use fewer ranks.")
        self.reader_batches = reader_batches_per_epoch(n, spec.num_shards, spec.batch_size)
        begin, end = shard_bounds(n, spec.shard_id, spec.num_shards)
        self.shard_size = end - begin
        if spec.train:
            self.samples_per_epoch = n // spec.num_shards  # the smallest shard: equal on every rank
            self.steps_per_epoch = -(-self.samples_per_epoch // spec.batch_size)
        else:
            self.samples_per_epoch = self.shard_size
            self.steps_per_epoch = self.reader_batches
        self._epoch = 0
        self._consumed = 0  # batches taken from the pipeline in the current reader epoch
        self._new_epoch: Optional[int] = None
        self._broken: Optional[DataError] = None
        self._pipe = self._build(None)

    # -- Loader protocol ---------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` at the next iteration unless it is the epoch in progress (mid-epoch resume)."""
        if epoch != self._epoch:
            self._new_epoch = epoch

    def __iter__(self) -> Iterator[Batch]:
        """Yield the rest of the current epoch, or a whole new epoch if the current one is done."""
        if self._new_epoch is not None or self._consumed >= self.steps_per_epoch:
            self._finish_reader_epoch()
            self._epoch = self._new_epoch if self._new_epoch is not None else self._epoch + 1
            self._new_epoch = None
        while self._consumed < self.steps_per_epoch:
            yield self._next_batch()

    def state_dict(self) -> dict[str, Any]:
        """Plain-typed state of this rank: DALI's checkpoint (reader position, every RNG) and the epoch position."""
        if self._broken is not None:
            raise self._broken
        return {"version": STATE_VERSION, "train": self.spec.train, "epoch": self._epoch,
                "consumed": self._consumed, "new_epoch": self._new_epoch,
                "shard_id": self.spec.shard_id, "num_shards": self.spec.num_shards,
                "batch_size": self.spec.batch_size, "num_samples": len(self.spec.source),
                "seed": self.spec.seed, "data_fingerprint": self.fingerprint,
                "dali_checkpoint": bytes(self._pipe.checkpoint())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rebuild the pipeline from a saved state so the next batches equal those that would have followed."""
        mine = {"version": STATE_VERSION, "train": self.spec.train, "shard_id": self.spec.shard_id,
                "num_shards": self.spec.num_shards, "batch_size": self.spec.batch_size,
                "num_samples": len(self.spec.source), "seed": self.spec.seed, "data_fingerprint": self.fingerprint}
        diff = {k: (state.get(k), v) for k, v in mine.items() if state.get(k) != v}
        if diff:
            saved = ", ".join(f"{k}={str(a)[:12]}" for k, (a, _) in diff.items())
            now = ", ".join(f"{k}={str(b)[:12]}" for k, (_, b) in diff.items())
            raise CheckpointError(f"the data-pipeline state was saved with {saved} but this run has {now}; "
                                  "resume with the same data, batch size and number of ranks, or start fresh "
                                  "(--resume none).")
        self._pipe = self._build(bytes(state["dali_checkpoint"]))
        self._epoch, self._consumed = int(state["epoch"]), int(state["consumed"])
        self._new_epoch = state.get("new_epoch")
        self._broken = None

    # -- internals -----------------------------------------------------------------------

    def _build(self, checkpoint: Optional[bytes]):
        try:
            return build_pipeline(self.spec, checkpoint)
        except RuntimeError as e:
            if self.spec.decode == "mixed" and "CUDA" in str(e):
                raise ConfigError(f"DALI cannot decode on the GPU here ({str(e).strip().splitlines()[-1]}); "
                                  "use --dali-decode cpu or --data-backend torchvision.") from None
            raise

    def _run(self) -> tuple[Any, Any]:
        if self._broken is not None:
            raise self._broken
        try:
            images, index = self._pipe.run()
        except RuntimeError as e:
            self._broken = self._decode_error(e)  # DALI's pipeline is now invalid: every later call fails too
            raise self._broken from None
        self._consumed += 1
        return images, index

    def _next_batch(self) -> Batch:
        k = self._consumed
        images, index = self._run()
        # DLPack import happens on the current stream of the rank's device (DALI adds the wait there)
        with torch.cuda.device(self.spec.device_id) if self.spec.gpu_output else contextlib.nullcontext():
            idx = torch.from_dlpack(index.as_tensor()).reshape(-1).long()
            x = dali_to_torch(images, self.layout)
        labels = self._labels[idx] if self._labels is not None else None
        real = int(min(max(self.samples_per_epoch - k * self.spec.batch_size, 0), self.spec.batch_size))
        if self.spec.train:
            if real < len(idx):  # the last train batch: keep the real samples (a view of DALI's memory)
                x, idx = x[:real], idx[:real]
                labels = labels[:real] if labels is not None else None
            return Batch(x, labels, indices=idx, valid=real)
        return Batch(x, labels, indices=idx, valid=real)  # val: padded batch, `valid` leading samples count

    def _finish_reader_epoch(self) -> None:
        """Read and drop the rest of the reader epoch so the next epoch starts on a fresh one."""
        if self._consumed == 0:
            return
        while self._consumed < self.reader_batches:
            self._run()
        self._consumed = 0

    def _decode_error(self, e: RuntimeError) -> DataError:
        msg = str(e)
        if isinstance(self.spec.source, TarSource):
            hint = ("Run `python -m darklight_dist.data scan` on the image folder the shards were written from, "
                    "remove the bad files and write the shards again.")
        else:
            hint = (f"Run `python -m darklight_dist.data scan --data-path {self._data_root}` to find the undecodable "
                    "files and write clean lists for --train-list/--val-list.")
        m = _FAILED_SAMPLE.search(msg)
        if m:
            return ShardDataError(f"cannot decode image {m.group(1).strip()}. {hint}")
        # DALI names the file only when decoding proper fails, not when parsing the header or reading
        # the file does: look for the culprit among this rank's files (two small reads per file).
        last = next((ln for ln in reversed(msg.splitlines()) if ln.strip() and "no longer valid" not in ln), "")
        found, complete = (find_suspects(list(self.spec.source.paths)) if isinstance(self.spec.source, FileSource)
                           else ([], True))  # inside tars there is nothing cheap to check
        if len(found) == 1:
            path, _, why = found[0].partition(" (")
            if why.startswith("unreadable"):
                return ShardDataError(f"cannot read image {path}: {why[len('unreadable ('):-2].lower()}. "
                                      "Fix its permissions or leave it out with --train-list/--val-list.")
            return ShardDataError(f"cannot decode image {path} ({why[:-1]}). {hint}")
        if found:
            return ShardDataError(f"cannot decode images; likely culprits: {', '.join(found)}. {hint}")
        if "decod" in msg or "nvImageCodec" in msg or "mmap" in msg.lower():
            what = "cannot decode an image" + ("" if complete else " (no culprit found in the time budget)")
            return ShardDataError(f"{what} (DALI: {last.strip()}). {hint}")
        raise e


def _seeded_order(n: int, seed: int) -> np.ndarray:
    # The same permutation on every rank (depends on --seed only), so shards stay disjoint.
    return np.random.default_rng([seed, 0xDA11]).permutation(n)


def _source_and_labels(split: Split, train: bool, seed: int, device: torch.device
                       ) -> tuple[Union[FileSource, TarSource], Optional[torch.Tensor]]:
    labels = list(split.labels)
    table = None if all(lbl < 0 for lbl in labels) else torch.tensor(labels, dtype=torch.int64, device=device)
    if isinstance(split, WebDatasetSplit):
        return split.tar_source(), table
    order = _seeded_order(len(split), seed) if train else np.arange(len(split))
    root = Path(split.root).resolve()
    paths = tuple(os.path.join(root, split.files[i]) for i in order)
    return FileSource(paths, tuple(int(i) for i in order)), table


def data_fingerprint(split: Split) -> str:
    """sha256 of the split's sample list and labels (relative paths, so a moved data set still resumes)."""
    h = hashlib.sha256()
    names = split.files if isinstance(split, FileSet) else [os.path.basename(t) for t in split.tar_paths]
    h.update("\n".join(names).encode("utf-8", "surrogateescape"))
    h.update(np.asarray(split.labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def _data_root(split: Split) -> Path:
    root = Path(split.root)
    return root.parent if root.name in ("train", "val") else root


def build_dali_loaders(cfg: "Config", *, rank: int, world_size: int, local_rank: int, device: torch.device,
                       train_files: Optional[Split], val_files: Split, layout: str
                       ) -> tuple[Optional[DaliLoader], DaliLoader]:
    """The train and val DALI loaders of one rank (train is None when `train_files` is None)."""
    if layout not in ("nchw", "nhwc"):
        raise ValueError(f"layout must be 'nchw' or 'nhwc', got {layout!r}")
    if not dali_available():
        raise ConfigError("--data-backend dali needs NVIDIA DALI: pip install nvidia-dali-cuda120 "
                          "(or -cuda130), or use --data-backend torchvision.")
    d = cfg.data
    if d.val_resize_size < d.image_size:
        raise ConfigError(f"--val-resize-size {d.val_resize_size} is smaller than --image-size {d.image_size}: the "
                          "validation center crop would not fit.")
    on_gpu = device.type == "cuda"
    decode = resolve_decode(d.dali_decode, device)

    def spec(split: Split, train: bool) -> tuple[GraphSpec, Optional[torch.Tensor]]:
        source, labels = _source_and_labels(split, train, cfg.run.seed, device)
        return GraphSpec(source=source, train=train, shard_id=rank, num_shards=world_size,
                         batch_size=cfg.optim.batch_size, num_threads=d.workers, seed=cfg.run.seed,
                         device_id=local_rank if on_gpu else None, decode=decode, gpu_output=on_gpu,
                         half=on_gpu and cfg.run.amp != "none",
                         image_size=d.image_size, val_resize_size=d.val_resize_size, min_scale=d.min_scale,
                         mean=tuple(d.mean), std=tuple(d.std), layout="HWC" if layout == "nhwc" else "CHW",
                         hw_decoder_load=d.hw_decoder_load), labels

    train = None
    if train_files is not None:
        s, labels = spec(train_files, True)
        train = DaliLoader(s, labels, layout, _data_root(train_files), data_fingerprint(train_files))
    s, labels = spec(val_files, False)
    val = DaliLoader(s, labels, layout, _data_root(val_files), data_fingerprint(val_files))
    log.info("DALI: decode=%s, %d threads, shard %d/%d, %s train steps/epoch, %d val steps", decode,
             max(1, d.workers), rank, world_size, train.steps_per_epoch if train else "no", val.steps_per_epoch)
    return train, val
