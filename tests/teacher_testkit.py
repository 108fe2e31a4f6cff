"""Small models, ONNX files and aligned inputs shared by the teacher tests."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from darklight_dist.teachers.buffers import ALIGNMENT

logging.getLogger("onnxscript").setLevel(logging.WARNING)
logging.getLogger("onnx_ir").setLevel(logging.WARNING)


class TinyNet(nn.Module):
    """A 16x16 classifier small enough that the fake TensorRT tests stay fast."""

    def __init__(self, num_classes: int = 10, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng():  # seeded weights without disturbing the caller's RNG
            torch.manual_seed(seed)
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.head = nn.Linear(8, num_classes)
        # Large weights: logits of order 1-10, so agreement/difference checks have teeth.
        with torch.no_grad():
            self.head.weight.mul_(20)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def export_tiny(path: Path, *, seed: int = 0, precision: str = "fp32") -> Path:
    """Export TinyNet (legacy exporter: fastest) and return the .onnx path."""
    from darklight_dist.teachers.export import export_onnx
    export_onnx(TinyNet(seed=seed), path, num_classes=10, image_size=16, precision=precision, exporter="legacy")
    return path


def aligned(shape: tuple[int, ...], *, offset_bytes: int = 0, channels_last: bool = False,
            seed: int = 0) -> torch.Tensor:
    """Random float32 images at a pointer with exactly `offset_bytes` past a 256-byte boundary.

    offset_bytes=192 reproduces the DALI CPU buffers observed in this project.
    """
    n, c, h, w = shape
    numel = n * c * h * w
    flat = torch.empty(numel + 2 * ALIGNMENT // 4)
    start = ((-flat.data_ptr()) % ALIGNMENT + offset_bytes) // 4
    base = flat[start:start + numel]
    gen = torch.Generator().manual_seed(seed)
    if channels_last:
        x = base.view(n, h, w, c).permute(0, 3, 1, 2)
    else:
        x = base.view(shape)
    x.copy_(torch.randn(shape, generator=gen))
    assert x.data_ptr() % ALIGNMENT == offset_bytes
    return x
