"""The ONNX Runtime teacher: IO binding straight on torch memory, outputs into preallocated buffers.

CPU path: ran and tested here. CUDA path (CUDAExecutionProvider on a dedicated torch stream
passed as `user_compute_stream`): written from the ONNX Runtime docs and PRs #19229/#14088,
never run in this project's CI (no GPU); `tests/gpu` covers it where a GPU exists.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Union

import torch

from ..errors import ConfigError, TeacherError
from .base import TeacherInfo, fingerprint_of
from .buffers import OutputRing
from .export import NUMPY_DTYPES, TORCH_DTYPES, onnx_sha256, read_signature
from .streams import SideStream

log = logging.getLogger(__name__)


def import_onnxruntime():
    """The onnxruntime module, or a ConfigError that says how to get it."""
    try:
        import onnxruntime
    except ImportError as e:
        raise ConfigError(f"--teacher-backend onnxruntime needs onnxruntime ({e}): pip install onnxruntime "
                          "(CPU) or onnxruntime-gpu (CUDA).") from None
    return onnxruntime


def choose_providers(ort, device: torch.device, stream_handle: int) -> list:
    """Explicit providers: CPU only on CPU; CUDA on the teacher's stream (never stream 0) on a GPU."""
    available = ort.get_available_providers()
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in available:
        raise ConfigError(f"ONNX Runtime has no CUDAExecutionProvider (available: {', '.join(available)}); "
                          "pip install onnxruntime-gpu, or use --teacher-backend torch / --device cpu.")
    opts = {"device_id": str(device.index or 0), "user_compute_stream": str(stream_handle)}
    # CPU stays listed for the few nodes CUDA lacks (shape arithmetic); ORT copies those itself.
    return [("CUDAExecutionProvider", opts), "CPUExecutionProvider"]


class OnnxRuntimeTeacher:
    """A frozen ONNX classifier run by ONNX Runtime on the memory of the batch itself."""

    def __init__(self, path: Union[str, Path], *, device: torch.device, num_classes: Optional[int] = None,
                 threads: Optional[int] = None) -> None:
        ort = import_onnxruntime()
        self.sig = read_signature(path)
        if num_classes is not None and self.sig.num_classes != num_classes:
            raise TeacherError(f"teacher has {self.sig.num_classes} classes, the data {num_classes}: {path} was "
                               "exported for another data set. Re-export it with --num-classes "
                               f"{num_classes} or point --data-path at the matching data.")
        self.device = device
        self.dtype = TORCH_DTYPES[self.sig.precision]
        if self.sig.precision not in NUMPY_DTYPES:
            raise TeacherError(f"{path}: ONNX Runtime teacher supports fp32/fp16 graphs, not {self.sig.precision}.")
        self._np_dtype = NUMPY_DTYPES[self.sig.precision]
        self._side = SideStream(device)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()  # share torch's thread budget
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = choose_providers(ort, device, self._side.handle)
        try:
            self.session = ort.InferenceSession(str(self.sig.path), opts, providers=providers)
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types
            raise TeacherError(f"--teacher {path}: ONNX Runtime cannot load it: {str(e).strip()[:400]}") from None
        wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
        if self.session.get_providers()[0] != wanted:
            raise TeacherError(f"ONNX Runtime did not enable {wanted} (got {self.session.get_providers()}).")
        self._run_options = ort.RunOptions()
        if device.type == "cuda":
            # Run() would otherwise synchronize its stream at the end, i.e. block the host.
            self._run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")
        self._io = self.session.io_binding()
        self._dev = ("cuda", device.index or 0) if device.type == "cuda" else ("cpu", 0)
        self._out = OutputRing((self.sig.num_classes,), self.dtype, device)
        self.copies = 0
        static_batch = self.sig.input_shape[0] if isinstance(self.sig.input_shape[0], int) else None
        self.info = TeacherInfo(backend="onnxruntime", precision=self.sig.precision, num_classes=self.sig.num_classes,
                                input_size=self.sig.image_size, max_batch_size=static_batch, layouts=("nchw",),
                                model_sha256=onnx_sha256(self.sig.path),
                                extra={"providers": self.session.get_providers(), "path": str(self.sig.path),
                                       "intra_op_num_threads": opts.intra_op_num_threads})

    def _check_shape(self, images: torch.Tensor) -> None:
        want = self.sig.input_shape
        if images.dim() != 4 or images.shape[1] != 3:
            raise TeacherError(f"teacher input must be [N, 3, H, W], got {list(images.shape)}.")
        for axis, name in ((0, "batch"), (2, "height"), (3, "width")):
            if isinstance(want[axis], int) and images.shape[axis] != want[axis]:
                raise TeacherError(f"the ONNX teacher {self.sig.path.name} takes {name} {want[axis]}, the batch has "
                                   f"{images.shape[axis]} (shape {list(images.shape)}); set --image-size / "
                                   "--teacher-input-size to match or re-export.")
        if images.device.type != self.device.type:
            raise TeacherError(f"teacher runs on {self.device}, images are on {images.device}.")

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Logits `[N, C]` in fp32; reads `images` in place unless its dtype or layout forces a counted copy."""
        self._check_shape(images)
        x = images
        if x.dtype != self.dtype or not x.is_contiguous():  # ORT reads dense NCHW of the graph's dtype
            x = x.to(self.dtype, memory_format=torch.contiguous_format)  # both fixes in one counted copy
            self.copies += 1
        n = x.shape[0]
        out = self._out.get(n)
        dev, idx = self._dev
        with self._side.ordered(x, out):
            self._io.bind_input(self.sig.input_name, dev, idx, self._np_dtype, tuple(x.shape), x.data_ptr())
            self._io.bind_output(self.sig.output_name, dev, idx, self._np_dtype, tuple(out.shape), out.data_ptr())
            self.session.run_with_iobinding(self._io, self._run_options)
        return out if out.dtype == torch.float32 else out.float()

    def fingerprint(self) -> dict[str, str]:
        """Identity for checkpoints (same ONNX = same teacher, whatever the backend)."""
        return fingerprint_of(self.info)

    def close(self) -> None:
        """Drop the session and bindings."""
        self._io = self.session = None  # type: ignore[assignment]
