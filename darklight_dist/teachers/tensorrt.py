"""The TensorRT teacher: a cached engine run on torch memory and a dedicated stream (no pycuda).

Per call: `set_input_shape`, `set_tensor_address` on torch tensors (input and a preallocated
output), `execute_async_v3` on the teacher's own stream, ordered against torch's current
stream. Inputs that are not 256-byte aligned, or not in the engine's layout or dtype, are
staged through one persistent buffer and counted.

Status: ran in this project only against the strict fake TensorRT 10 and 11 in
tests/fake_tensorrt, on host memory. The CUDA path (real streams, device pointers) follows
the documented API but has not been run here; tests/gpu holds its checks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..errors import ConfigError, TeacherError
from .base import TeacherInfo, fingerprint_of
from .buffers import GrowingBuffer, OutputRing, is_aligned
from .engine_cache import EngineCache, EngineSpec
from .export import onnx_sha256, read_signature
from .streams import SideStream
from .tensorrt_build import build_plan, import_tensorrt, make_logger, precision_of

log = logging.getLogger(__name__)

_TORCH = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TensorRTTeacher:
    """Runs one deserialized engine (one optimization profile, one input, one output)."""

    def __init__(self, trt: Any, engine: Any, *, device: torch.device, info: TeacherInfo, logger: Any) -> None:
        self.trt, self.engine, self.device, self._logger = trt, engine, device, logger
        self.context = engine.create_execution_context()
        if self.context is None:
            raise TeacherError(f"TensorRT could not create an execution context: {logger.errors()}")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        ins = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(ins) != 1 or len(outs) != 1:
            raise TeacherError(f"TensorRT engine has inputs {ins} and outputs {outs}; a teacher needs one of each.")
        self.input_name, self.output_name = ins[0], outs[0]
        self.in_dtype = _TORCH[precision_of(trt, engine.get_tensor_dtype(self.input_name))]
        self.out_dtype = _TORCH[precision_of(trt, engine.get_tensor_dtype(self.output_name))]
        fmt = engine.get_tensor_format(self.input_name)
        self.layout = "nhwc" if fmt == trt.TensorFormat.HWC else "nchw"
        if fmt not in (trt.TensorFormat.HWC, trt.TensorFormat.LINEAR):
            raise TeacherError(f"TensorRT engine input format {fmt} is not LINEAR or HWC.")
        lo, _, hi = engine.get_tensor_profile_shape(self.input_name, 0)
        self.min_batch, self.max_batch = int(lo[0]), int(hi[0])
        self.image_hw = (int(hi[2]), int(hi[3]))
        self.num_classes = int(engine.get_tensor_shape(self.output_name)[1])
        self._staging = GrowingBuffer((3, *self.image_hw), self.in_dtype, device, channels_last=self.layout == "nhwc")
        self._out = OutputRing((self.num_classes,), self.out_dtype, device)
        self._side = SideStream(device)
        self.copies = 0
        self.copy_reasons = {"alignment": 0, "layout": 0, "dtype": 0}
        self.info = info

    def _accepts(self, x: torch.Tensor) -> Optional[str]:
        """Why `x` cannot be handed to the engine as is, or None when it can."""
        if x.dtype != self.in_dtype:
            return "dtype"
        fmt = torch.channels_last if self.layout == "nhwc" else torch.contiguous_format
        if not x.is_contiguous(memory_format=fmt):  # TensorRT reads a raw pointer and ignores strides
            return "layout"
        if not is_aligned(x):
            return "alignment"
        return None

    def _check(self, images: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != self.image_hw:
            raise TeacherError(f"TensorRT teacher takes [N, 3, {self.image_hw[0]}, {self.image_hw[1]}], got "
                               f"{list(images.shape)}; set --teacher-input-size / --image-size to match the engine.")
        n = images.shape[0]
        if n > self.max_batch:
            raise TeacherError(f"a batch of {n} images exceeds the TensorRT engine's profile max of {self.max_batch}. "
                               f"Rebuild with --teacher-max-batch {n} (or more), or lower --batch-size.")
        if n < self.min_batch:
            raise TeacherError(f"a batch of {n} images is below the TensorRT engine's profile min {self.min_batch}.")
        if images.device.type != self.device.type:
            raise TeacherError(f"TensorRT teacher runs on {self.device}, the images are on {images.device}.")

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Logits `[N, C]` in fp32; valid until the call after next (two output buffers in turn)."""
        self._check(images)
        x = images
        reason = self._accepts(x)
        if reason is not None:
            staged = self._staging.get(x.shape[0])
            staged.copy_(x)  # one copy: converts dtype and layout, lands on an aligned address
            self.copies += 1
            self.copy_reasons[reason] += 1
            x = staged
        n = x.shape[0]
        out = self._out.get(n)
        ctx = self.context
        if not ctx.set_input_shape(self.input_name, tuple(x.shape)):
            raise TeacherError(f"TensorRT refused input shape {list(x.shape)}: {self._logger.errors()}")
        if not (ctx.set_tensor_address(self.input_name, x.data_ptr())
                and ctx.set_tensor_address(self.output_name, out.data_ptr())):
            raise TeacherError(f"TensorRT refused a tensor address: {self._logger.errors()}")
        with self._side.ordered(x, out) as stream:
            if not ctx.execute_async_v3(stream):
                raise TeacherError(f"TensorRT failed to enqueue the teacher: {self._logger.errors()}")
        return out if out.dtype == torch.float32 else out.float()

    def fingerprint(self) -> dict[str, str]:
        """Identity for checkpoints (same ONNX and precision = same teacher)."""
        return fingerprint_of(self.info)

    def close(self) -> None:
        """Release the context and engine (TensorRT frees on refcount)."""
        self.context = self.engine = None


def gpu_identity(device: torch.device) -> tuple[str, str]:
    """(GPU name, compute capability) for the cache key; ("host", "0.0") on the fake's CPU path."""
    if device.type != "cuda":
        return "host", "0.0"
    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), f"{major}.{minor}"


def build_tensorrt_teacher(onnx_path: Union[str, Path], *, device: torch.device, num_classes: Optional[int] = None,
                           precision: str = "fp32", layout: str = "nchw", max_batch: int = 256,
                           opt_batch: Optional[int] = None, min_batch: int = 1, image_size: Optional[int] = None,
                           cache_dir: Optional[Union[str, Path]] = None, trt: Any = None) -> TensorRTTeacher:
    """Load (or build once per node, then load) the engine for an ONNX teacher."""
    trt = trt if trt is not None else import_tensorrt()
    if device.type != "cuda" and not getattr(trt, "_darklight_fake_host_memory", False):
        raise ConfigError("--teacher-backend tensorrt needs a CUDA device; use --teacher-backend onnxruntime or "
                          "torch on CPU.")
    sig = read_signature(onnx_path)
    if num_classes is not None and sig.num_classes != num_classes:
        raise TeacherError(f"teacher has {sig.num_classes} classes, the data {num_classes}: {onnx_path} was exported "
                           f"for another data set. Re-export it with --num-classes {num_classes}.")
    size = image_size or sig.image_size
    if size is None:
        raise ConfigError(f"{onnx_path} has a symbolic image size; give --teacher-input-size.")
    opt_batch = opt_batch or max_batch
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ConfigError(f"engine batch profile must satisfy 1 <= min <= opt <= max, got "
                          f"{min_batch}/{opt_batch}/{max_batch}.")
    if device.type == "cuda":
        torch.cuda.set_device(device)  # TensorRT builds and deserializes on the current device
    gpu, cc = gpu_identity(device)
    spec = EngineSpec(onnx_sha256=onnx_sha256(onnx_path), trt_version=str(trt.__version__), gpu_name=gpu,
                      compute_capability=cc, precision=precision, layout=layout, min_batch=min_batch,
                      opt_batch=opt_batch, max_batch=max_batch, image_size=size)
    cache = EngineCache(cache_dir)
    logger = make_logger(trt)
    runtime = trt.Runtime(logger)

    def build(timing: Optional[bytes]) -> tuple[bytes, Optional[bytes]]:
        """Called by the cache under the node's build lock, with the persisted timing cache."""
        return build_plan(trt, Path(onnx_path), precision=precision, layout=layout, min_batch=min_batch,
                          opt_batch=opt_batch, max_batch=max_batch, image_size=size, timing_cache=timing)

    engine, status = cache.get_or_build(spec, build, runtime.deserialize_cuda_engine)
    info = TeacherInfo(backend="tensorrt", precision=precision, num_classes=sig.num_classes, input_size=size,
                       max_batch_size=max_batch, layouts=(layout,), model_sha256=spec.onnx_sha256,
                       extra={"engine": str(cache.entry(spec)), "cache": status, "trt_version": spec.trt_version,
                              "profile": [min_batch, opt_batch, max_batch]})
    log.info("TensorRT %s engine %s (%s): profile %d/%d/%d, layout %s, %s", trt.__version__, spec.key(), status,
             min_batch, opt_batch, max_batch, layout, precision)
    teacher = TensorRTTeacher(trt, engine, device=device, info=info, logger=logger)
    teacher.runtime = runtime  # the runtime must outlive its engines
    return teacher
