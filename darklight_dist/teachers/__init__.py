"""Teacher backends behind one protocol; `build_teacher` picks one and says why."""

from __future__ import annotations

import logging
from typing import Union

import torch
from torch import nn

from ..config import Config
from ..errors import ConfigError
from .base import Teacher, TeacherInfo
from .torch import build_torch_teacher

log = logging.getLogger(__name__)

__all__ = ["Teacher", "TeacherInfo", "build_teacher"]


def build_teacher(cfg: Config, spec: Union[str, nn.Module, None], *, num_classes: int,
                  device: torch.device) -> tuple[Teacher, str]:
    """Build the teacher for `spec` on `device`; returns it and the reason its backend was chosen."""
    if spec is None:
        raise ConfigError("--kd needs a teacher: give --teacher (FILE.onnx, a model name or module:callable), "
                          "or use --kd none.")
    t = cfg.teacher
    backend = t.backend
    if isinstance(spec, str) and spec.endswith(".onnx"):
        raise ConfigError(f"--teacher {spec}: ONNX teachers need the onnxruntime or tensorrt backend, "
                          "which are not available in this build yet.")
    if backend not in ("auto", "torch"):
        raise ConfigError(f"--teacher-backend {backend} is not available in this build yet; use torch.")
    why = "torch requested" if backend == "torch" else "auto: the teacher is a torch model"
    teacher = build_torch_teacher(spec, t.weights, num_classes=num_classes, device=device, precision=t.precision,
                                  channels_last=cfg.run.channels_last, compile=t.compile,
                                  input_size=t.input_size)
    return teacher, why
