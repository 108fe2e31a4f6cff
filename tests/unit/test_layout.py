"""Dataset discovery: torchvision's class order, extensions, clear errors, stratified fractions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torchvision.datasets import ImageFolder

from darklight_dist.data.builtin import materialize_digits
from darklight_dist.data.layout import scan_image_folder, split_dirs, stratified_fraction
from darklight_dist.errors import DataError
from tests.conftest import write_image_folder


def test_class_index_and_files_match_torchvision(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, classes=4, per_class=3, splits=("train",)) / "train"
    (root / "class_1" / "UPPER.JPEG").write_bytes((root / "class_1" / "000.jpg").read_bytes())
    (root / "class_2" / "notes.txt").write_text("not an image")
    fs = scan_image_folder(root)
    tv = ImageFolder(str(root))
    assert fs.classes == tv.classes
    assert [(str(root / f), y) for f, y in zip(fs.files, fs.labels)] == [(p, y) for p, y in tv.samples]
    assert "class_1/UPPER.JPEG" in fs.files and fs.skipped == ["class_2/notes.txt"]


def test_empty_class_folder_and_missing_splits_are_errors(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, classes=2, per_class=2)
    (root / "train" / "empty_class").mkdir()
    with pytest.raises(DataError, match="empty_class has no images"):
        scan_image_folder(root / "train")
    (tmp_path / "only_train" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no val/ folder"):
        split_dirs(tmp_path / "only_train")


def test_stratified_fraction_is_seeded_and_per_class() -> None:
    labels = [c for c in range(10) for _ in range(20)]
    a, b = stratified_fraction(labels, 0.1, 3), stratified_fraction(labels, 0.1, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, stratified_fraction(labels, 0.1, 4))
    assert np.bincount(np.asarray(labels)[a]).tolist() == [2] * 10


def test_builtin_digits_materializes_real_jpegs() -> None:
    root = materialize_digits()
    tr, va = scan_image_folder(root / "train"), scan_image_folder(root / "val")
    assert (len(tr), len(va), tr.classes) == (1437, 360, [str(i) for i in range(10)])
    assert (root / "train" / tr.files[0]).read_bytes()[:2] == b"\xff\xd8"  # JPEG magic
