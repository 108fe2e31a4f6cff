"""DALI graph definitions: one train and one val pipeline, the same code for CPU and GPU.

The CPU and GPU graphs differ only in device arguments: where decoding happens ("cpu" or
"mixed"), where the images move to the GPU (`.gpu()`), `device_id` and the output dtype
(fp16 on GPU, fp32 on CPU). Every sample carries its data-set index instead of its label;
the loader turns indices into labels with a lookup table, so sharding and resume can be
checked sample by sample and unlabeled data needs no special graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np

READER_NAME = "Reader"
SHUFFLE_BUFFER = 1024
"""DALI's reader shuffles inside a buffer of this many encoded samples (its default)."""


@dataclass(frozen=True)
class FileSource:
    """Absolute image paths with the data-set index each sample reports."""

    paths: tuple[str, ...]
    indices: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.paths)


@dataclass(frozen=True)
class TarSource:
    """WebDataset tar shards with DALI index files; each sample holds its data-set index (`sid`)."""

    tar_paths: tuple[str, ...]
    index_paths: tuple[str, ...]
    num_samples: int

    def __len__(self) -> int:
        return self.num_samples


Source = Union[FileSource, TarSource]

IMAGE_EXTS = "jpg;jpeg;png;ppm;bmp;pgm;tif;tiff;webp"
"""Image component names the tar reader accepts (one per sample)."""
INDEX_EXT = "sid"
"""Tar component holding the sample's data-set index as little-endian int64."""


@dataclass(frozen=True)
class GraphSpec:
    """Everything that shapes one rank's pipeline (a restored pipeline must be built from the same spec)."""

    source: Source
    train: bool
    shard_id: int
    num_shards: int
    batch_size: int
    num_threads: int
    seed: int
    device_id: Optional[int]
    decode: str
    """"cpu" or "mixed"."""
    gpu_output: bool
    """Move images to the GPU (after CPU decode) or keep them there (mixed decode)."""
    image_size: int
    val_resize_size: int
    min_scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    layout: str
    """"CHW" or "HWC"."""
    hw_decoder_load: float = 0.65
    half: bool = False
    """Emit fp16 (GPU with --amp: half the bytes; autocast casts as needed) instead of fp32."""


def derive_seed(seed: int, rank: int, stream: int) -> int:
    """A well-mixed 31-bit seed for (run seed, rank, stream); different ranks never share a stream."""
    return int(np.random.SeedSequence([seed, rank, stream]).generate_state(1)[0] & 0x7FFFFFFF)


def _read(spec: GraphSpec):
    """Encoded images and data-set indices of this rank's shard."""
    from nvidia.dali import fn, types

    # stick_to_shard: a rank reads the same shard every epoch (DALI's default would rotate
    # shards each epoch); pad_last_batch: every shard's epoch is the same whole number of
    # batches, so reader epochs stay aligned with the loader's epochs.
    common = dict(shard_id=spec.shard_id, num_shards=spec.num_shards, random_shuffle=spec.train,
                  initial_fill=SHUFFLE_BUFFER, stick_to_shard=True, pad_last_batch=True,
                  name=READER_NAME, seed=derive_seed(spec.seed, spec.shard_id, 1))
    if isinstance(spec.source, FileSource):
        return fn.readers.file(files=list(spec.source.paths), labels=list(spec.source.indices), **common)
    jpegs, sid = fn.readers.webdataset(paths=list(spec.source.tar_paths), index_paths=list(spec.source.index_paths),
                                       ext=[IMAGE_EXTS, INDEX_EXT], dtypes=[types.UINT8, types.INT64],
                                       missing_component_behavior="error", **common)
    return jpegs, sid


def _normalize(images, spec: GraphSpec, mirror=None, crop_pos=None):
    """Normalize with the teacher's mean/std, cast, and lay out as CHW or HWC."""
    from nvidia.dali import fn, types

    if spec.gpu_output and spec.decode == "cpu":
        images = images.gpu()  # CPU decode + resize, then uint8 crosses to the GPU (4x fewer bytes than fp32)
    extra: dict = {"mirror": mirror} if mirror is not None else {}
    if crop_pos is not None:
        extra.update(crop=(spec.image_size, spec.image_size), crop_pos_x=crop_pos[0], crop_pos_y=crop_pos[1])
    return fn.crop_mirror_normalize(
        images, mean=[255.0 * m for m in spec.mean], std=[255.0 * s for s in spec.std],
        dtype=types.FLOAT16 if spec.half else types.FLOAT, output_layout=spec.layout, **extra)


def _decoder_args(spec: GraphSpec) -> dict:
    from nvidia.dali import types

    # adjust_orientation=False: ignore EXIF rotation like PIL/torchvision, so the DALI and torchvision
    # backends (and the teacher's reference preprocessing) see the same geometry.
    args: dict = dict(device=spec.decode, output_type=types.RGB, adjust_orientation=False)
    if spec.decode == "mixed":
        args["hw_decoder_load"] = spec.hw_decoder_load
    return args


def _train_graph(spec: GraphSpec):
    from nvidia.dali import fn, types

    jpegs, index = _read(spec)
    # Decode only the random-resized-crop window (torchvision's RandomResizedCrop ranges).
    images = fn.decoders.image_random_crop(jpegs, random_area=[spec.min_scale, 1.0],
                                           random_aspect_ratio=[3.0 / 4.0, 4.0 / 3.0], num_attempts=10,
                                           **_decoder_args(spec))
    images = fn.resize(images, resize_x=spec.image_size, resize_y=spec.image_size,
                       interp_type=types.INTERP_LINEAR, antialias=True)
    images = _normalize(images, spec, mirror=fn.random.coin_flip(probability=0.5))
    return images, _index_out(index, spec)


def _val_graph(spec: GraphSpec):
    from nvidia.dali import fn, types
    import nvidia.dali.math as dmath

    jpegs, index = _read(spec)
    images = fn.decoders.image(jpegs, **_decoder_args(spec))
    # torchvision's Resize(int): shorter side -> S, longer side -> floor(S * long / short).
    # DALI's resize_shorter rounds the longer side instead, which shifts the center crop.
    shape = images.shape(dtype=types.INT32)
    h, w = shape[0], shape[1]
    short = dmath.min(h, w)
    s, c = spec.val_resize_size, spec.image_size
    new_h, new_w = (s * h) // short, (s * w) // short
    images = fn.resize(images, resize_x=fn.cast(new_w, dtype=types.FLOAT), resize_y=fn.cast(new_h, dtype=types.FLOAT),
                       interp_type=types.INTERP_LINEAR, antialias=True)
    images = _normalize(images, spec, crop_pos=(_center_anchor(new_w, c), _center_anchor(new_h, c)))
    return images, _index_out(index, spec)


def _center_anchor(extent, crop: int):
    """torchvision's CenterCrop offset round((extent - crop) / 2) (half to even) as a DALI crop_pos in [0, 1].

    DALI's own crop_pos=0.5 rounds half up, one pixel off torchvision for odd margins.
    """
    from nvidia.dali import fn, types
    import nvidia.dali.math as dmath

    d = extent - crop
    half = d // 2
    odd, half_odd = d - 2 * half, half - 2 * (half // 2)
    anchor = half + odd * half_odd
    # +0.25 px: the same pixel whether DALI rounds or floors crop_pos * d
    return (fn.cast(anchor, dtype=types.FLOAT) + 0.25) / fn.cast(dmath.max(d, 1), dtype=types.FLOAT)


def _index_out(index, spec: GraphSpec):
    # On GPU the index rides along as a (tiny) device tensor, so the label lookup stays on device.
    return index.gpu() if spec.gpu_output else index


def build_pipeline(spec: GraphSpec, checkpoint: Optional[bytes] = None):
    """Build (not yet run) the pipeline for `spec`, restored from `checkpoint` when given."""
    from nvidia.dali import pipeline_def

    graph = _train_graph if spec.train else _val_graph

    @pipeline_def(enable_checkpointing=True)
    def pipe():
        return graph(spec)

    # exec_dynamic: outputs own their memory, so torch tensors made from them by DLPack stay
    # valid after the next batch (zero-copy without the buffer-reuse hazard).
    p = pipe(batch_size=spec.batch_size, num_threads=max(1, spec.num_threads), device_id=spec.device_id,
             seed=derive_seed(spec.seed, spec.shard_id, 2), exec_dynamic=True, prefetch_queue_depth=2,
             checkpoint=checkpoint)
    p.build()
    return p


def shard_bounds(num_samples: int, shard_id: int, num_shards: int) -> tuple[int, int]:
    """[begin, end) of a shard in DALI's reader order (its formula: floor(i * N / S))."""
    return num_samples * shard_id // num_shards, num_samples * (shard_id + 1) // num_shards


def reader_batches_per_epoch(num_samples: int, num_shards: int, batch_size: int) -> int:
    """Batches one reader epoch yields on every shard with pad_last_batch (the largest shard, rounded up)."""
    largest = -(-num_samples // num_shards)
    return -(-largest // batch_size)


def source_from_paths(paths: Sequence[str], indices: Sequence[int]) -> FileSource:
    """A FileSource from absolute paths and their data-set indices."""
    return FileSource(tuple(str(p) for p in paths), tuple(int(i) for i in indices))
