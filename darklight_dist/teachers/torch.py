"""The PyTorch teacher backend: eager (optionally channels_last / torch.compile), frozen, no grad."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..errors import TeacherError
from ..models import build_model
from .base import TeacherInfo, fingerprint_of

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_state_dict(sd: dict[str, torch.Tensor]) -> str:
    """sha256 over a state_dict's names and tensor bytes, in key order."""
    h = hashlib.sha256()
    for k in sorted(sd):
        h.update(k.encode())
        t = sd[k]
        if isinstance(t, torch.Tensor):
            h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load_state_dict_file(path: str) -> dict[str, torch.Tensor]:
    """Load a state_dict safely (weights_only); accept {"model": state_dict} checkpoints too."""
    p = Path(path)
    if not p.is_file():
        raise TeacherError(f"--teacher-weights {path}: no such file.")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle with code, a zip that is not torch's, random bytes...
        raise TeacherError(f"--teacher-weights {path}: cannot be loaded as weights ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:200]}). Give a state_dict saved with torch.save(model.state_dict()).") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise TeacherError(f"--teacher-weights {path}: the file holds a {type(obj).__name__}, not a state_dict "
                           "(a dict of parameter names to tensors). Save it with torch.save(model.state_dict(), path).")
    return obj


class TorchTeacher:
    """Runs an nn.Module frozen: eval mode, no grad, chosen precision and memory format."""

    def __init__(self, model: nn.Module, *, num_classes: int, device: torch.device, precision: str = "fp32",
                 channels_last: bool = False, compile: bool = False, input_size: Optional[int] = None,
                 sha256: str = "") -> None:
        self.dtype = _DTYPES[precision]
        self.device = device
        self.model = model.to(device=device, dtype=self.dtype).eval().requires_grad_(False)
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._fn = torch.compile(self.model) if compile else self.model
        self.copies = 0
        self.info = TeacherInfo(backend="torch", precision=precision, num_classes=num_classes, input_size=input_size,
                                max_batch_size=None, layouts=("nhwc", "nchw") if channels_last else ("nchw", "nhwc"),
                                model_sha256=sha256 or sha256_state_dict(self.model.state_dict()),
                                extra={"compile": compile, "channels_last": channels_last})

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Logits in fp32; a dtype change of the input is a counted copy."""
        if images.dtype != self.dtype:
            images = images.to(self.dtype)
            self.copies += 1
        return self._fn(images).float()

    def fingerprint(self) -> dict[str, str]:
        """Identity for checkpoints."""
        return fingerprint_of(self.info)

    def close(self) -> None:
        """Nothing to release beyond the module."""
        self._fn = self.model = None  # type: ignore[assignment]


def build_torch_teacher(spec: str, weights: Optional[str], *, num_classes: int, device: torch.device,
                        precision: str = "fp32", channels_last: bool = False, compile: bool = False,
                        input_size: Optional[int] = None) -> TorchTeacher:
    """A torch teacher from a model spec (or an nn.Module) and an optional state_dict file."""
    model = spec if isinstance(spec, nn.Module) else build_model(spec, num_classes)
    sha = ""
    if weights:
        sd = load_state_dict_file(weights)
        try:
            model.load_state_dict(sd)
        except RuntimeError as e:
            mismatch = [ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln]
            hint = (f" The data has {num_classes} classes; the weights were trained for another count."
                    if mismatch else "")
            raise TeacherError(f"--teacher-weights {weights} do not fit teacher '{spec}': "
                               f"{(mismatch or str(e).splitlines())[0][:300]}.{hint}") from None
        sha = sha256_file(weights)
    return TorchTeacher(model, num_classes=num_classes, device=device, precision=precision,
                        channels_last=channels_last, compile=compile, input_size=input_size, sha256=sha)
