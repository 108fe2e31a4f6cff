"""Fake TensorRT: version constants, enums, the logger and small value types."""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

VERSIONS = {10: "10.16.0.72", 11: "11.4.0.106"}
_MAGIC = b"FAKETRTPLAN\0"
_ALIGN = 256


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    BF16 = 7
    INT64 = 8


_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16}
_FROM_ONNX = {1: DataType.FLOAT, 10: DataType.HALF, 16: DataType.BF16, 6: DataType.INT32, 7: DataType.INT64}


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class TensorFormat(enum.IntEnum):
    LINEAR = 0
    CHW2 = 1
    HWC8 = 2
    CHW4 = 3
    CHW16 = 4
    CHW32 = 5
    DHWC8 = 6
    CDHW32 = 7
    HWC = 8


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1
    DLA_LOCAL_DRAM = 2
    DLA_GLOBAL_DRAM = 3
    TACTIC_DRAM = 4
    TACTIC_SHARED_MEMORY = 5


_FLAGS_COMMON = ["DEBUG", "GPU_FALLBACK", "REFIT", "DISABLE_TIMING_CACHE", "TF32", "SPARSE_WEIGHTS",
                 "SAFETY_SCOPE", "DIRECT_IO", "REJECT_EMPTY_ALGORITHMS", "VERSION_COMPATIBLE",
                 "EXCLUDE_LEAN_RUNTIME", "WEIGHT_STREAMING", "STRIP_PLAN", "REFIT_IDENTICAL",
                 "STRICT_NANS", "EDITABLE_TIMING_CACHE", "ERROR_ON_TIMING_CACHE_MISS"]
_FLAGS_PRECISION = ["FP16", "BF16", "INT8", "FP8", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS",
                    "PREFER_PRECISION_CONSTRAINTS"]


class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class ILogger:
    """Base class a user logger derives from; subclasses must call ILogger.__init__ and define log()."""

    Severity = Severity
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (Severity.INTERNAL_ERROR, Severity.ERROR, Severity.WARNING,
                                                     Severity.INFO, Severity.VERBOSE)

    def __init__(self) -> None:
        self._fake_init = True

    def log(self, severity: Severity, msg: str) -> None:  # pragma: no cover - abstract in TensorRT
        raise NotImplementedError


class Logger(ILogger):
    """The stock logger: prints messages at or above min_severity."""

    def __init__(self, min_severity: Severity = Severity.WARNING) -> None:
        super().__init__()
        self.min_severity = min_severity

    def log(self, severity: Severity, msg: str) -> None:
        if severity <= self.min_severity:
            print(f"[fake TRT] {severity.name}: {msg}")


def _check_logger(logger: Any) -> None:
    if not isinstance(logger, ILogger) or not getattr(logger, "_fake_init", False):
        raise TypeError("incompatible constructor arguments: logger must be a tensorrt.ILogger "
                        "(did the subclass call ILogger.__init__?)")


def _err(logger: ILogger, msg: str) -> None:
    logger.log(Severity.ERROR, msg)


def _need_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what}: incompatible function arguments, expected int, got {type(value).__name__}")
    return value


class Dims(tuple):
    """TensorRT Dims: a tuple of ints, -1 for dynamic."""


class IHostMemory(bytes):
    """Serialized plan / timing cache: supports bytes() and the buffer protocol like the real one."""

    @property
    def nbytes(self) -> int:
        return len(self)
