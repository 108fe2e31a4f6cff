"""The Python API builds the same run as the CLI from objects; teacher and student share each tensor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from darklight_dist import Distiller
from darklight_dist.models import tiny_mlp


@pytest.mark.parametrize("mixing", [{}, {"mixup_alpha": 0.8}, {"cutmix_alpha": 1.0}], ids=["plain", "mixup", "cutmix"])
def test_distiller_with_modules_feeds_the_same_tensor_to_teacher_and_student(image_folder: Path, tmp_path: Path,
                                                                             mixing: dict, monkeypatch) -> None:
    torch.manual_seed(0)
    student, teacher = tiny_mlp(3), tiny_mlp(3)
    seen_s: list[torch.Tensor] = []
    seen_t: list[torch.Tensor] = []
    student.register_forward_hook(lambda m, i, o: seen_s.append(i[0]) if m.training else None)
    teacher.register_forward_hook(lambda m, i, o: seen_t.append(i[0]) if student.training else None)
    from darklight_dist.data.mixing import Mixer
    mixed: list[torch.Tensor] = []
    real_call = Mixer.__call__

    def recording_call(self, images, labels):
        out = real_call(self, images, labels)
        mixed.append(out[0])
        if self.active:
            assert not torch.equal(out[0], images)
        return out

    monkeypatch.setattr(Mixer, "__call__", recording_call)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    # teacher_backend torch: the hooks watch the module itself (auto would export it to ONNX Runtime)
    summary = Distiller(student, teacher, str(image_folder), kd="soft", kd_temperature=2.0, image_size=16,
                        teacher_backend="torch",
                        val_resize_size=16, batch_size=8, workers=0, device="cpu", progress=False,
                        output_dir=str(tmp_path / "run"), **mixing).train(epochs=2)
    assert summary["steps"] == 6 and summary["backends"]["teacher"] == "torch"
    assert len(seen_s) == len(seen_t) == 6, (len(seen_s), len(seen_t))
    assert all(a is b for a, b in zip(seen_s, seen_t)), "the teacher got another tensor than the student"
    assert summary["backends"]["teacher_copies"] == 0
    assert all(a is b for a, b in zip(mixed, seen_s)), "the student did not train on the mixer's output"
    assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items())
    assert json.loads((tmp_path / "run/summary.json").read_text())["steps"] == 6
