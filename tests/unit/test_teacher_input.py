"""A teacher with a fixed input side must get exactly that side: equal, or resized by --teacher-input-size."""

from __future__ import annotations

import pytest

from darklight_dist.errors import ConfigError
from darklight_dist.teachers import TeacherInfo
from darklight_dist.trainer import check_teacher_input


def info(size: int | None) -> TeacherInfo:
    return TeacherInfo(backend="onnxruntime", precision="fp32", num_classes=10, input_size=size, max_batch_size=None)


def test_matching_or_resized_or_any_size_is_accepted() -> None:
    check_teacher_input(info(224), 224, None)
    check_teacher_input(info(224), 160, 224)  # --teacher-input-size resizes the crop for the teacher
    check_teacher_input(info(None), 160, None)  # a torch teacher takes any size


@pytest.mark.parametrize("image_size,teacher_size,flag", [(160, None, "--image-size 160"),
                                                          (160, 192, "--teacher-input-size 192")])
def test_mismatch_is_a_clear_error(image_size: int, teacher_size: int | None, flag: str) -> None:
    with pytest.raises(ConfigError, match=f"takes 224x224 images .*\\({flag}\\). Pass --teacher-input-size 224"):
        check_teacher_input(info(224), image_size, teacher_size)
