"""`python -m darklight_dist.data scan|shards`, and DALI reading the WebDataset shards it writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("nvidia.dali")

from darklight_dist.config import Config  # noqa: E402
from darklight_dist.data.__main__ import main  # noqa: E402
from darklight_dist.data.dali import build_dali_loaders  # noqa: E402
from darklight_dist.data.layout import read_file_list, scan_image_folder  # noqa: E402
from darklight_dist.data.webdataset import is_webdataset_dir, load_webdataset, write_index  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def write_tree(root: Path, counts: dict[str, int], seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (int(rng.integers(20, 40)), 30, 3), dtype=np.uint8)).save(
                root / cls / f"{i}.jpg")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ds")
    write_tree(root / "train", {"a": 14, "b": 13, "c": 13}, seed=0)  # 40
    write_tree(root / "val", {"a": 5, "b": 4, "c": 4}, seed=1)  # 13
    return root


@pytest.fixture(scope="module")
def shards(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "wds"
    assert main(["shards", "--data-path", str(dataset), "--out", str(out), "--shard-size", "7"]) == 0
    return out


def test_shards_layout_and_index_files(shards, dataset):
    assert is_webdataset_dir(shards)
    train = load_webdataset(shards, "train")
    assert len(train) == 40 and len(train.tar_paths) == 6  # ceil(40 / 7)
    assert train.classes == ["a", "b", "c"] and train.labels == scan_image_folder(dataset / "train").labels
    from torchvision.datasets import ImageFolder

    assert train.labels == ImageFolder(str(dataset / "train")).targets, "torchvision's class index, sample by sample"
    # our index writer agrees with the `wds2idx` tool the DALI wheel installs
    wds2idx = pytest.importorskip("wds2idx")
    mine = Path(train.index_paths[0]).read_text()
    theirs = Path(train.index_paths[0] + ".ref")
    with wds2idx.IndexCreator(train.tar_paths[0], str(theirs), verbose=False) as ic:
        ic.create_index()
    assert mine == theirs.read_text() and mine.startswith("v1.2 7\n")


def test_shards_refuse_a_used_output_folder(shards, dataset, capsys):
    assert main(["shards", "--data-path", str(dataset), "--out", str(shards)]) == 2
    assert "already holds shards" in capsys.readouterr().err


def _cfg(batch: int) -> Config:
    cfg = Config()
    cfg.optim.batch_size, cfg.data.workers, cfg.data.image_size, cfg.data.val_resize_size = batch, 1, 16, 20
    return cfg


def test_webdataset_shards_split_disjointly_over_four_ranks(shards):
    train_split, val_split = load_webdataset(shards, "train"), load_webdataset(shards, "val")
    train_seen, val_seen = [], []
    for rank in range(4):
        train, val = build_dali_loaders(_cfg(batch=5), rank=rank, world_size=4, local_rank=rank % 2,
                                        device=torch.device("cpu"), train_files=train_split, val_files=val_split,
                                        layout="nchw")
        assert train.steps_per_epoch == 2 and val.steps_per_epoch == 1
        for b in train:
            assert b.labels.tolist() == [train_split.labels[i] for i in b.indices.tolist()]
            assert b.images.shape == (5, 3, 16, 16)
            train_seen += b.indices.tolist()
        for b in val:
            val_seen += b.indices[: b.valid].tolist()
            assert b.labels.tolist() == [val_split.labels[i] for i in b.indices.tolist()]
    assert sorted(train_seen) == list(range(40)), "10 per rank, 2 full batches of 5: everything, once"
    assert sorted(val_seen) == list(range(13))


def test_write_index_refuses_an_empty_tar(tmp_path):
    import tarfile

    from darklight_dist.errors import DataError

    with tarfile.open(tmp_path / "e.tar", "w"):
        pass
    with pytest.raises(DataError, match="no samples"):
        write_index(tmp_path / "e.tar", tmp_path / "e.idx")


def test_scan_reports_bad_files_and_writes_clean_lists(dataset, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    good = (data / "train" / "a" / "0.jpg").read_bytes()
    (data / "train" / "b" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (data / "train" / "c" / "fake.JPEG").write_bytes(b"not an image at all")
    (data / "val" / "a" / "readme.txt").write_text("hello")
    out = tmp_path / "lists"
    proc = subprocess.run([sys.executable, "-m", "darklight_dist.data", "scan", "--data-path", str(data), "--out",
                           str(out), "-j", "2"], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    bad = (out / "bad.txt").read_text()
    assert "train/b/truncated.jpg" in bad and "train/c/fake.JPEG" in bad and "val/a/readme.txt" in bad
    train = read_file_list(out / "train.txt", data)
    assert len(train) == 40 and not any("truncated" in f or "fake" in f for f in train.files)
    assert train.labels == scan_image_folder(dataset / "train").labels  # same classes, same order
    assert len(read_file_list(out / "val.txt", data)) == 13
    assert "train: 40 images decode, 2 do not" in proc.stdout


def test_cli_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main(["scan", "--data-path", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "nope does not exist" in err
