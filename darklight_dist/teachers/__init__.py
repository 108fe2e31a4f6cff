"""Teacher backends behind one protocol; `build_teacher` picks one and says why.

Backends: `torch` (eager / channels_last / torch.compile / CUDA graphs), `onnxruntime` (IO
binding on torch memory), `tensorrt` (cached engines, imported lazily: only when chosen).
"""

from __future__ import annotations

from .base import Teacher, TeacherInfo
from .parity import check_parity, teacher_parity, teacher_top1
from .select import build_teacher, choose_backend

__all__ = ["Teacher", "TeacherInfo", "build_teacher", "check_parity", "choose_backend", "teacher_parity",
           "teacher_top1"]
