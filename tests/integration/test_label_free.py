"""Label-free distillation: a folder of images without classes, function matching, labeled val only."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from darklight_dist import Distiller
from darklight_dist.models import tiny_mlp
from tests.conftest import write_image_folder

COMMON = dict(image_size=16, val_resize_size=16, batch_size=8, workers=0, device="cpu", progress=False, seed=0,
              min_scale=0.5)


def test_label_free_fm_improves_student_over_its_initialization(tmp_path: Path) -> None:
    data = write_image_folder(tmp_path / "data", classes=3, per_class=16)
    teacher = tiny_mlp(3)
    Distiller(teacher, None, str(data), kd="none", lr=0.2, output_dir=str(tmp_path / "teacher"),
              **COMMON).train(epochs=8)
    flat = tmp_path / "unlabeled"
    (flat / "train").mkdir(parents=True)
    for i, f in enumerate(sorted((data / "train").rglob("*.jpg"))):  # the same images, no class folders
        shutil.copy(f, flat / "train" / f"img_{i:03d}.jpg")
    shutil.copytree(data / "val", flat / "val")

    def student() -> torch.nn.Module:
        torch.manual_seed(123)
        return tiny_mlp(3)

    kw = dict(COMMON, kd="fm", unlabeled=True, lr=0.2, teacher_weights=None)
    init = Distiller(student(), teacher, str(flat), output_dir=str(tmp_path / "init"), **kw).train(epochs=0)
    done = Distiller(student(), teacher, str(flat), output_dir=str(tmp_path / "fm"), **kw).train(epochs=10)
    assert init["steps"] == 0 and done["steps"] == 10 * 48 // 8
    assert done["teacher_top1"] > 90.0, done["teacher_top1"]
    assert done["student_top1"] >= init["student_top1"] + 30.0, (init["student_top1"], done["student_top1"])
    assert done["final_eval"]["agreement"] > 80.0
