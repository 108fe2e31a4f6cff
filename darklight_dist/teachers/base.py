"""The Teacher protocol: images in, frozen logits out, on the same device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch


@dataclass
class TeacherInfo:
    """What a teacher tells the rest of the run about itself."""

    backend: str
    """"tensorrt" | "onnxruntime" | "torch"."""
    precision: str
    """"fp32" | "fp16" | "bf16"."""
    num_classes: int
    """Width of the logits."""
    input_size: int | None
    """Square input side the model expects, or None when any size works."""
    max_batch_size: int | None
    """Largest batch the backend accepts (engine profile max), None for unbounded."""
    layouts: tuple[str, ...] = ("nchw",)
    """Memory layouts accepted without a copy: "nchw" (contiguous) and/or "nhwc" (channels_last)."""
    model_sha256: str = ""
    """sha256 of the model file (ONNX, weights) or of the state_dict bytes."""
    extra: dict = field(default_factory=dict)
    """Backend details worth logging (providers, engine path, cache hit...)."""


class Teacher(Protocol):
    """A frozen model. Calling it enqueues work on the current stream and never syncs the host."""

    info: TeacherInfo
    copies: int
    """How many times an input had to be copied (layout/alignment staging)."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Return logits `[N, num_classes]` for `images` `[N, 3, H, W]`, no grad."""

    def fingerprint(self) -> dict[str, str]:
        """Identity of the teacher for checkpoints: backend, precision, sha256 of the model."""

    def close(self) -> None:
        """Release engines, sessions and buffers."""


def fingerprint_of(info: TeacherInfo) -> dict[str, str]:
    """The checkpoint identity of a teacher: resuming with another one is refused.

    The backend is left out on purpose: the same ONNX run by ONNX Runtime or TensorRT is the
    same teacher; the precision is kept because fp16 logits are a different function.
    """
    return {"sha256": info.model_sha256, "precision": info.precision, "num_classes": str(info.num_classes)}
