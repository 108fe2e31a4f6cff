"""The training CLI with a teacher that declares a fixed 32x32 input, as an ONNX or TensorRT teacher does.

Only the declared size is faked (the torch backend accepts any size); the check under test is the
trainer's, which runs the same for every backend.
"""

from __future__ import annotations

import sys

import darklight_dist.trainer as trainer
from darklight_dist.train import main

_build = trainer.build_teacher


def fixed_size_teacher(*args, **kwargs):  # type: ignore[no-untyped-def]
    teacher, why = _build(*args, **kwargs)
    teacher.info.input_size = 32
    return teacher, why


trainer.build_teacher = fixed_size_teacher

if __name__ == "__main__":
    main(sys.argv[1:])
