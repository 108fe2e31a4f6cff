"""The PyTorch teacher backend: eager (optionally channels_last / torch.compile), frozen, no grad.

On CUDA it can also replay a CUDA graph captured for the fixed batch shape (`cuda_graph=True`).
That path is written from the torch.cuda.graphs documentation and has not run in this
project's CI (no GPU); tests/gpu checks it where a GPU exists.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..errors import TeacherError
from ..models import build_model
from .base import TeacherInfo, fingerprint_of

log = logging.getLogger(__name__)

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
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # 0-d too
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
                 sha256: str = "", cuda_graph: bool = False) -> None:
        self.dtype = _DTYPES[precision]
        self.device = device
        self.model = model.to(device=device, dtype=self.dtype).eval().requires_grad_(False)
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._fn = torch.compile(self.model) if compile else self.model
        self.copies = 0
        if cuda_graph and device.type != "cuda":
            log.warning("--teacher-cuda-graph needs CUDA; running eager on %s", device)
            cuda_graph = False
        self.cuda_graph = cuda_graph
        self._graph: Optional[torch.cuda.CUDAGraph] = None
        self._static_in: Optional[torch.Tensor] = None
        self._static_out: Optional[torch.Tensor] = None
        self.info = TeacherInfo(backend="torch", precision=precision, num_classes=num_classes, input_size=input_size,
                                max_batch_size=None, layouts=("nhwc", "nchw") if channels_last else ("nchw", "nhwc"),
                                model_sha256=sha256 or sha256_state_dict(self.model.state_dict()),
                                extra={"compile": compile, "channels_last": channels_last,
                                       "cuda_graph": cuda_graph})

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Logits in fp32; a dtype change of the input is a counted copy."""
        if images.dtype != self.dtype:
            images = images.to(self.dtype)
            self.copies += 1
        if self.cuda_graph:
            return self._replay(images)
        return self._fn(images).float()

    def _capture(self, images: torch.Tensor) -> None:
        """Capture the forward for this exact shape and memory format (warm-up on a side stream first)."""
        fmt = torch.channels_last if images.is_contiguous(memory_format=torch.channels_last) \
            and not images.is_contiguous() else torch.contiguous_format
        self._static_in = torch.empty_like(images, memory_format=fmt).copy_(images)
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up: cuDNN autotuning and lazy init must not be captured
            for _ in range(3):
                self._fn(self._static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._static_out = self._fn(self._static_in)

    def _replay(self, images: torch.Tensor) -> torch.Tensor:
        """Replay the graph for the captured shape (one counted input copy); other shapes run eager."""
        if self._graph is None:
            self._capture(images)
        assert self._static_in is not None and self._static_out is not None and self._graph is not None
        if images.shape != self._static_in.shape or images.stride() != self._static_in.stride():
            return self._fn(images).float()  # e.g. the last, smaller batch of an epoch
        self._static_in.copy_(images)  # graphs read fixed addresses: the price is one copy per step
        self.copies += 1
        self._graph.replay()
        return self._static_out.float() if self._static_out.dtype != torch.float32 else self._static_out.clone()

    def fingerprint(self) -> dict[str, str]:
        """Identity for checkpoints."""
        return fingerprint_of(self.info)

    def close(self) -> None:
        """Nothing to release beyond the module."""
        self._fn = self.model = None  # type: ignore[assignment]
        self._graph = self._static_in = self._static_out = None


def build_torch_teacher(spec: str, weights: Optional[str], *, num_classes: int, device: torch.device,
                        precision: str = "fp32", channels_last: bool = False, compile: bool = False,
                        input_size: Optional[int] = None, cuda_graph: bool = False) -> TorchTeacher:
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
                        channels_last=channels_last, compile=compile, input_size=input_size, sha256=sha,
                        cuda_graph=cuda_graph)
