"""DALI loaders on CPU: sharding over 2 nodes x 2 ranks, exact validation counts, resume, zero-copy."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("nvidia.dali")

from darklight_dist.config import Config  # noqa: E402
from darklight_dist.data.dali import build_dali_loaders, dali_to_torch  # noqa: E402
from darklight_dist.data.layout import FileSet, scan_image_folder, scan_unlabeled_folder  # noqa: E402
from darklight_dist.errors import CheckpointError  # noqa: E402

CPU = torch.device("cpu")


def write_tree(root: Path, counts: dict[str, int], seed: int = 0) -> None:
    """Class folders of small random-content JPEGs with varied sizes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            h, w = int(rng.integers(24, 48)), int(rng.integers(24, 48))
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / cls / f"{i:03d}.jpg")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[FileSet, FileSet]:
    root = tmp_path_factory.mktemp("ds")
    write_tree(root / "train", {"ant": 17, "bee": 16, "cat": 17}, seed=1)  # 50 images: 4 shards of 12/13
    write_tree(root / "val", {"ant": 8, "bee": 7, "cat": 8}, seed=2)  # 23 images
    return scan_image_folder(root / "train"), scan_image_folder(root / "val")


def cfg_for(batch: int = 4, seed: int = 0, workers: int = 1) -> Config:
    cfg = Config()
    cfg.optim.batch_size = batch
    cfg.run.seed = seed
    cfg.data.workers = workers
    cfg.data.image_size = 16
    cfg.data.val_resize_size = 20
    return cfg


def loaders(data, rank: int, world: int, layout: str = "nchw", **kw):
    train, val = data
    return build_dali_loaders(cfg_for(**kw), rank=rank, world_size=world, local_rank=rank % 2, device=CPU,
                              train_files=train, val_files=val, layout=layout)


def test_two_nodes_two_ranks_train_epoch_disjoint_and_covering(data):
    train_set, _ = data
    world = 4  # 2 nodes x 2 ranks: global ranks 0..3
    seen, steps, sizes = [], set(), set()
    for rank in range(world):
        train, _ = loaders(data, rank, world, batch=5)
        steps.add(train.steps_per_epoch)
        batches = list(train)
        idx = [b.indices.tolist() for b in batches]
        sizes.add(tuple(len(b) for b in batches))
        assert all(b.images.shape[0] == b.labels.shape[0] == len(b.indices) == b.valid for b in batches)
        assert len(idx) == train.steps_per_epoch
        flat = [i for batch in idx for i in batch]
        seen.append(flat)
    assert steps == {3}, "every rank must run the same number of steps (ceil(12 / 5))"
    assert sizes == {(5, 5, 2)}, "the last batch holds the real samples only, the same count on every rank"
    everything = [i for s in seen for i in s]
    assert len(everything) == len(set(everything)), "a sample was read by two ranks in one epoch"
    # 50 images, 4 shards of 12 or 13, 12 samples per rank: 48 distinct samples, 2 dropped
    assert len(set(everything)) == 48 and set(everything) <= set(range(len(train_set)))


def test_train_covers_everything_when_shards_divide_evenly(tmp_path):
    write_tree(tmp_path / "train", {"a": 20, "b": 12}, seed=3)  # 32 = 4 ranks x 2 steps x 4
    write_tree(tmp_path / "val", {"a": 2, "b": 2}, seed=4)
    data = (scan_image_folder(tmp_path / "train"), scan_image_folder(tmp_path / "val"))
    per_rank = []
    for rank in range(4):
        train, _ = loaders(data, rank, 4)
        for epoch in range(2):
            train.set_epoch(epoch)
            batches = list(train)
            got = [i for b in batches for i in b.indices.tolist()]
            if epoch == 0:
                per_rank.append(got)
                labels = torch.cat([b.labels for b in batches]).tolist()
                assert labels == [data[0].labels[i] for i in got], "labels must follow the samples"
            else:
                assert sorted(got) == sorted(per_rank[rank]), "a rank keeps its shard across epochs"
                assert got != per_rank[rank], "the shard is reshuffled each epoch"
    flat = [i for r in per_rank for i in r]
    assert sorted(flat) == list(range(32))
    # the shards mix classes (the file list is permuted with --seed before sharding)
    assert all(len({data[0].labels[i] for i in r}) == 2 for r in per_rank)


def test_validation_counts_every_image_exactly_once(data):
    _, val_set = data
    counted, labels, steps = [], [], set()
    for rank in range(4):
        _, val = loaders(data, rank, 4)
        steps.add(val.steps_per_epoch)
        for _ in range(2):  # two evaluations: the second must be identical
            batches = list(val)
        assert len(batches) == val.steps_per_epoch
        for b in batches:
            counted += b.indices[: b.valid].tolist()
            labels += b.labels[: b.valid].tolist()
    assert steps == {2}, "ceil(6 / 4) on every rank: shards of 5 and 6, padded"
    assert sorted(counted) == list(range(len(val_set)))
    assert labels == [val_set.labels[i] for i in counted]


def test_seeds_make_runs_reproducible_and_ranks_differ(data):
    a, _ = loaders(data, 0, 2, seed=7)
    b, _ = loaders(data, 0, 2, seed=7)
    c, _ = loaders(data, 0, 2, seed=8)
    ba, bb, bc = next(iter(a)), next(iter(b)), next(iter(c))
    assert torch.equal(ba.indices, bb.indices) and torch.equal(ba.images, bb.images)
    assert not torch.equal(ba.indices, bc.indices)


def test_layouts_and_dtype(data):
    _, v1 = loaders(data, 0, 1, layout="nchw")
    _, v2 = loaders(data, 0, 1, layout="nhwc")
    x1, x2 = next(iter(v1)).images, next(iter(v2)).images
    assert x1.shape == x2.shape == (4, 3, 16, 16) and x1.dtype == torch.float32
    assert x1.is_contiguous() and x2.is_contiguous(memory_format=torch.channels_last) and not x2.is_contiguous()
    assert torch.equal(x1, x2)


def test_batch_images_share_memory_with_dali_output(data, monkeypatch):
    """No copy between DALI and the Batch: the tensor's storage is DALI's output buffer."""
    for layout in ("nchw", "nhwc"):
        train, _ = loaders(data, 0, 2, layout=layout)
        captured = []
        real_run = train._pipe.run

        def spy():
            out = real_run()
            captured.append(out[0].as_tensor().data_ptr())
            return out

        monkeypatch.setattr(train._pipe, "run", spy)
        it = iter(train)
        first = next(it)
        snapshot = first.images.clone()
        batches = [first] + list(it)  # kept alive: DALI must not reuse their buffers
        ptrs = [b.images.data_ptr() for b in batches]
        assert ptrs == captured[: len(ptrs)] and len(set(ptrs)) == len(ptrs)
        assert torch.equal(first.images, snapshot), "a later batch overwrote an earlier one"
    # and the helper alone: a DALI tensor -> torch view at the same address
    out = train._pipe.run()[0]
    assert dali_to_torch(out, "nchw").data_ptr() == out.as_tensor().data_ptr()


def test_resume_mid_epoch_gives_the_same_next_batches(data):
    train, _ = loaders(data, 1, 2)
    assert train.steps_per_epoch == 7  # 25 per rank: 6 x 4 + 1
    it = iter(train)
    for _ in range(4):
        next(it)
    buf = io.BytesIO()
    torch.save(train.state_dict(), buf)  # the checkpoint stores it this way, one file per rank
    state = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    expected = list(it)  # steps 5, 6 and the one-sample step 7
    train.set_epoch(1)
    expected += list(train)[:3]  # across the epoch boundary too

    again, _ = loaders(data, 1, 2)
    again.load_state_dict(state)
    got = list(again)
    again.set_epoch(1)
    got += list(again)[:3]
    assert len(got) == len(expected) == 6 and len(got[2]) == 1
    for e, g in zip(expected, got):
        assert torch.equal(e.indices, g.indices) and torch.equal(e.labels, g.labels)
        assert torch.equal(e.images, g.images), "augmentation RNG state must be restored too"


def test_resume_refuses_another_world_size_or_data(data):
    train, _ = loaders(data, 0, 2)
    state = train.state_dict()
    other, _ = loaders(data, 0, 4)
    with pytest.raises(CheckpointError, match="num_shards=2"):
        other.load_state_dict(state)
    renamed = FileSet(data[0].root, list(reversed(data[0].files)), data[0].labels, data[0].classes)
    moved, _ = loaders((renamed, data[1]), 0, 2)
    with pytest.raises(CheckpointError, match="data_fingerprint"):
        moved.load_state_dict(state)


def test_state_before_the_first_batch_and_right_after_restore(data):
    first, _ = loaders(data, 0, 2)
    s0 = first.state_dict()  # nothing read yet
    second, _ = loaders(data, 0, 2)
    second.load_state_dict(s0)
    s1 = second.state_dict()  # restored, nothing read yet
    third, _ = loaders(data, 0, 2)
    third.load_state_dict(s1)
    for a, b, c in zip(first, second, third):
        assert torch.equal(a.indices, b.indices) and torch.equal(a.indices, c.indices)
        assert torch.equal(a.images, c.images)


def test_unlabeled_train_yields_no_labels(tmp_path, data):
    write_tree(tmp_path / "flat", {"x": 9}, seed=5)
    unl = scan_unlabeled_folder(tmp_path / "flat")
    train, _ = build_dali_loaders(cfg_for(), rank=0, world_size=1, local_rank=0, device=CPU, train_files=unl,
                                  val_files=data[1], layout="nchw")
    b = next(iter(train))
    assert b.labels is None and b.images.shape[0] == 4 and sorted(b.indices.tolist())[-1] < 9


def test_decode_choice():
    from darklight_dist.data.dali import dali_available, resolve_decode

    assert dali_available()
    assert resolve_decode("mixed", CPU) == "cpu" and resolve_decode("auto", CPU) == "cpu"
    cuda = torch.device("cuda", 0)
    assert resolve_decode("auto", cuda) == "mixed" and resolve_decode("cpu", cuda) == "cpu"


def _bad_resize(data):
    cfg = cfg_for()
    cfg.data.val_resize_size = 8
    build_dali_loaders(cfg, rank=0, world_size=1, local_rank=0, device=CPU, train_files=None, val_files=data[1],
                       layout="nchw")


def test_clear_errors_for_tiny_sets_and_big_batches(data, tmp_path):
    from darklight_dist.errors import ConfigError, DataError

    train, _ = loaders(data, 0, 4, batch=64)  # a batch larger than the shard: one short batch
    assert train.steps_per_epoch == 1 and len(next(iter(train))) == 12
    with pytest.raises(ConfigError, match="smaller than --image-size"):
        _bad_resize(data)
    write_tree(tmp_path / "v", {"a": 1, "b": 1}, seed=9)
    with pytest.raises(DataError, match="validation set has 2 image"):
        build_dali_loaders(cfg_for(), rank=0, world_size=4, local_rank=0, device=CPU, train_files=None,
                           val_files=scan_image_folder(tmp_path / "v"), layout="nchw")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only failure mode")
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("decode", ["mixed", "cpu"])
def test_gpu_graphs_pass_dali_schema_checks(data, train, decode):
    """The GPU variants are defined without argument errors; only the missing GPU stops the build here.

    (DALI checks every operator argument while the graph is defined, before it looks for CUDA.)
    """
    from darklight_dist.data.dali_pipeline import FileSource, GraphSpec, build_pipeline

    files = data[0]
    spec = GraphSpec(source=FileSource(tuple(str(files.root / f) for f in files.files[:4]), (0, 1, 2, 3)),
                     train=train, shard_id=0, num_shards=1, batch_size=2, num_threads=1, seed=0, device_id=None,
                     decode=decode, gpu_output=True, image_size=16, val_resize_size=20, min_scale=0.08,
                     mean=(0.5,) * 3, std=(0.2,) * 3, layout="HWC", hw_decoder_load=0.5)
    with pytest.raises(RuntimeError, match="requires a CUDA-capable GPU"):
        build_pipeline(spec)
