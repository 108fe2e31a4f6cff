"""A strict fake of the TensorRT Python surface darklight_dist's backend uses (tests only).

`make_fake_tensorrt(10)` or `make_fake_tensorrt(11)` returns a module-like object to put in
`sys.modules["tensorrt"]`. It follows the documented semantics (shared/reference/api_facts.md
section 1) and is stricter than the real library where the real one only warns:

- calls fail the TensorRT way: they return False / None / -1 and log an ERROR through the
  ILogger given to them; they do not raise (except TypeError for wrong argument types and
  AttributeError for names that do not exist in the faked version);
- refused: unknown tensor names, unset input shapes or tensor addresses at enqueue, pointers
  that are 0 or not 256-byte aligned, stream handle 0 (the real one warns and syncs),
  shapes outside the optimization profile, dynamic inputs without a profile;
- faking 11: the precision builder flags, EXPLICIT_BATCH, `platform_has_fast_fp16`,
  `device_memory_size`, `supports_model`, ... are absent (AttributeError), `ITensor.dtype` is
  read-only; strong typing means the engine's I/O dtypes are the ONNX dtypes;
- "device memory" is host memory: a pointer is a CPU torch tensor's `data_ptr()`; the
  engine reads the input bytes at the pointer, runs the ONNX with ONNX Runtime, and writes
  the output bytes at the output pointer (honouring the HWC input format).

Env hooks for the racing-process test: FAKE_TRT_BUILD_LOG (append one line per build) and
FAKE_TRT_BUILD_SECONDS (sleep inside the build to widen the race window).
"""

from __future__ import annotations

import enum
import types

from .builder import (Builder, IBuilderConfig, INetworkDefinition, IOptimizationProfile, ITensor, ITimingCache,
                      OnnxParser, ParserError)
from .core import (_FLAGS_COMMON, _FLAGS_PRECISION, VERSIONS, DataType, Dims, IHostMemory, ILogger, Logger,
                   MemoryPoolType, TensorFormat, TensorIOMode)
from .runtime import ICudaEngine, IExecutionContext, Runtime


class FakeTRT(types.ModuleType):
    """The module object; counters (`builds`, `executions`, `timing_cache_hits`) are for assertions."""

    _darklight_fake_host_memory = True
    """Tells the backend that host pointers are acceptable (real TensorRT needs CUDA memory)."""

    def __init__(self, major: int) -> None:
        super().__init__("tensorrt")
        self.major = major
        self.__version__ = VERSIONS[major]
        self.builds = self.executions = self.timing_cache_hits = 0
        for cls in (DataType, TensorIOMode, TensorFormat, MemoryPoolType, ILogger, Logger, Dims, IHostMemory,
                    ParserError, ITensor, IBuilderConfig, INetworkDefinition, IOptimizationProfile, ITimingCache,
                    IExecutionContext):
            setattr(self, cls.__name__, cls)
        flags = _FLAGS_COMMON + (_FLAGS_PRECISION if major < 11 else [])
        self.BuilderFlag = enum.IntEnum("BuilderFlag", {n: i for i, n in enumerate(flags)})
        creation = {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1} if major < 11 else {"STRONGLY_TYPED": 1}
        self.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", creation)
        # Per-fake subclasses: names TensorRT 10 still has and 11 removed exist only on the 10 fake,
        # so code using them passes against fake 10 and fails (AttributeError) against fake 11.
        old = major < 11
        self.Builder = type("Builder", (Builder,), {"_fake": self, **(
            {"platform_has_fast_fp16": property(lambda s: True)} if old else {})})
        self.Runtime = type("Runtime", (Runtime,), {"_fake": self})
        self.OnnxParser = type("OnnxParser", (OnnxParser,), {
            "supports_model": (lambda s, model: (True, []))} if old else {})
        self._engine_cls = type("ICudaEngine", (ICudaEngine,), {
            "device_memory_size": property(lambda s: 1 << 20)} if old else {})
        self.ICudaEngine = self._engine_cls


def make_fake_tensorrt(major: int) -> FakeTRT:
    """A fresh fake `tensorrt` module for TensorRT `major` (10 or 11)."""
    if major not in VERSIONS:
        raise ValueError(f"no fake for TensorRT {major}")
    return FakeTRT(major)
