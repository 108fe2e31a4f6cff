"""ONNX -> TensorRT plan: parse, precision, layout, optimization profile, timing cache.

Written against the documented TensorRT 10 and 11 Python API (shared/reference/api_facts.md
section 1). In this project's CI it has run only against the strict fake in
tests/fake_tensorrt (both versions), never against a real TensorRT.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError, TeacherError

log = logging.getLogger(__name__)

_WORKSPACE_BYTES = 4 << 30  # the engine takes only what it needs at run time; generous costs nothing


def import_tensorrt() -> Any:
    """The tensorrt module (an injected one, e.g. the tests' fake, wins), or a ConfigError."""
    mod = sys.modules.get("tensorrt")
    if mod is not None:
        return mod
    try:
        return importlib.import_module("tensorrt")
    except Exception as e:  # ImportError, or OSError when libnvinfer is missing
        raise ConfigError(f"TensorRT is not importable ({type(e).__name__}: {e}). "
                          "Install TensorRT (pip install tensorrt-cu12 or use an NGC container), or use "
                          "--teacher-backend auto, onnxruntime or torch.") from None


def trt_major(trt: Any) -> int:
    """Major version of the tensorrt module (10, 11, ...)."""
    return int(str(trt.__version__).split(".")[0])


def make_logger(trt: Any) -> Any:
    """An ILogger that keeps every message, so failures can quote TensorRT's own words."""

    class CapturingLogger(trt.ILogger):
        """Keeps (severity, message) pairs; warnings and errors also go to our log."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[tuple[Any, str]] = []

        def log(self, severity: Any, msg: str) -> None:
            """Called by TensorRT (from its own threads too) for every message."""
            self.messages.append((severity, msg))
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                log.warning("TensorRT: %s", msg)

        def errors(self, last: int = 5) -> str:
            """The last few ERROR-or-worse messages, joined (for exception texts)."""
            bad = [m for s, m in self.messages if int(s) <= int(trt.ILogger.Severity.ERROR)]
            return " | ".join(bad[-last:]) or "(TensorRT logged no error)"

    return CapturingLogger()


def precision_of(trt: Any, dtype: Any) -> str:
    """"fp32" | "fp16" | "bf16" for a trt.DataType (anything else is named as is)."""
    names = {trt.DataType.FLOAT: "fp32", trt.DataType.HALF: "fp16", trt.DataType.BF16: "bf16"}
    return names.get(dtype, str(dtype))


def build_plan(trt: Any, onnx_path: Path, *, precision: str, layout: str, min_batch: int, opt_batch: int,
               max_batch: int, image_size: int, timing_cache: Optional[bytes] = None,
               workspace_bytes: int = _WORKSPACE_BYTES) -> tuple[bytes, Optional[bytes]]:
    """Build a serialized plan; returns (plan bytes, updated timing cache bytes). Raises TeacherError."""
    major = trt_major(trt)
    logger = make_logger(trt)
    builder = trt.Builder(logger)
    if builder is None:
        raise TeacherError(f"TensorRT could not create a builder: {logger.errors()}")
    # flags=0: every TRT 10 network is explicit-batch (EXPLICIT_BATCH is ignored there and gone in
    # 11); strong typing is always on in 11, and on 10 we keep weak typing + precision flags.
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # resolves external data next to the file
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise TeacherError(f"TensorRT's ONNX parser rejects {onnx_path}: {'; '.join(errors) or logger.errors()}")
    if network.num_inputs != 1 or network.num_outputs != 1:
        raise TeacherError(f"{onnx_path}: a teacher needs one input and one output, the parsed network has "
                           f"{network.num_inputs} and {network.num_outputs}.")
    inp = network.get_input(0)
    onnx_precision = precision_of(trt, inp.dtype)
    config = builder.create_builder_config()
    if major >= 11:
        # Strongly typed: the builder has no precision flags; the ONNX dtypes are the engine's.
        if onnx_precision != precision:
            raise TeacherError(f"TensorRT {trt.__version__} is strongly typed: {onnx_path} is {onnx_precision}, "
                               f"--teacher-precision is {precision}. Export a {precision} ONNX "
                               f"(python -m darklight_dist.export --precision {precision}) or ask for "
                               f"--teacher-precision {onnx_precision}.")
    else:
        if onnx_precision not in ("fp32", precision):
            raise TeacherError(f"{onnx_path} is {onnx_precision}; TensorRT 10 cannot build it as {precision}.")
        if precision != "fp32":
            # Weakly typed 10.x: the flag lets layers run in reduced precision (deprecated since 10.12,
            # removed in 11). An fp16 ONNX also gets it, or TensorRT may keep its layers in fp32.
            config.set_flag(trt.BuilderFlag.FP16 if precision == "fp16" else trt.BuilderFlag.BF16)
    if layout == "nhwc":
        # Shapes stay logical NCHW; only the memory order of the input changes (channels_last).
        inp.allowed_formats = 1 << int(trt.TensorFormat.HWC)
    elif layout != "nchw":
        raise ConfigError(f"engine input layout {layout!r}: use nchw or nhwc.")
    dims = tuple(inp.shape)
    if len(dims) != 4 or dims[0] != -1:
        raise TeacherError(f"{onnx_path}: input '{inp.name}' has dims {dims}; the batch dimension must be "
                           "dynamic (-1). Re-export with python -m darklight_dist.export.")
    for axis in (2, 3):
        if dims[axis] not in (-1, image_size):
            raise TeacherError(f"{onnx_path}: input is {dims[2]}x{dims[3]}, the run feeds {image_size}x{image_size}.")
    profile = builder.create_optimization_profile()
    shape = lambda b: (b, 3, image_size, image_size)  # noqa: E731
    profile.set_shape(inp.name, shape(min_batch), shape(opt_batch), shape(max_batch))
    if config.add_optimization_profile(profile) < 0:
        raise TeacherError(f"TensorRT rejects the batch profile min/opt/max = {min_batch}/{opt_batch}/{max_batch}: "
                           f"{logger.errors()}")
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    cache = config.create_timing_cache(timing_cache or b"")
    if cache is None:  # unreadable or from another TensorRT: start afresh rather than fail
        log.warning("TensorRT timing cache unreadable; starting an empty one")
        cache = config.create_timing_cache(b"")
    if not config.set_timing_cache(cache, False):  # False: refuse a cache made on another device
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise TeacherError(f"TensorRT failed to build an engine from {onnx_path}: {logger.errors()}")
    tc = config.get_timing_cache()
    return bytes(plan), (bytes(tc.serialize()) if tc is not None else None)
