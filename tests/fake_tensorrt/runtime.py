"""Fake TensorRT run side: runtime, engine, execution context (host memory, ONNX Runtime compute)."""

from __future__ import annotations

import ctypes
import hashlib
import json
from typing import TYPE_CHECKING, Optional

import numpy as np

from .core import (_ALIGN, _MAGIC, _NP, DataType, Dims, ILogger, TensorFormat, TensorIOMode,
                   _check_logger, _err, _need_int)

if TYPE_CHECKING:
    from . import FakeTRT


class Runtime:
    def __init__(self, logger: ILogger) -> None:
        _check_logger(logger)
        self._logger = logger
        self._owner: FakeTRT = self._fake  # type: ignore[attr-defined]
        self.engine_host_code_allowed = False

    def deserialize_cuda_engine(self, serialized_engine) -> Optional["ICudaEngine"]:
        data = bytes(serialized_engine)
        if not data.startswith(_MAGIC):
            _err(self._logger, "IRuntime::deserializeCudaEngine: Error Code 1: Serialization (Magic tag mismatch)")
            return None
        digest, body = data[len(_MAGIC):len(_MAGIC) + 32], data[len(_MAGIC) + 32:]
        if hashlib.sha256(body).digest() != digest:
            _err(self._logger, "IRuntime::deserializeCudaEngine: Error Code 1: Serialization (corrupt plan)")
            return None
        n = int.from_bytes(body[:8], "little")
        header = json.loads(body[8:8 + n])
        if header["version"] != self._owner.__version__:
            _err(self._logger, f"The engine plan file is not compatible with this version of TensorRT, expecting "
                               f"library version {self._owner.__version__} got {header['version']}")
            return None
        return self._owner._engine_cls(self._owner, header, body[8 + n:], self._logger)


class ICudaEngine:
    def __init__(self, owner: "FakeTRT", header: dict, onnx_bytes: bytes, logger: ILogger) -> None:
        import onnxruntime as ort
        self._owner, self._logger = owner, logger
        self._io = {t["name"]: dict(t, mode=TensorIOMode.INPUT) for t in header["inputs"]}
        self._io.update({t["name"]: dict(t, mode=TensorIOMode.OUTPUT, format=0) for t in header["outputs"]})
        self._names = [t["name"] for t in header["inputs"]] + [t["name"] for t in header["outputs"]]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self._session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
        self.device_memory_size_v2 = 1 << 20

    num_io_tensors = property(lambda self: len(self._names))
    num_optimization_profiles = property(lambda self: 1)

    def _get(self, name: str) -> Optional[dict]:
        if name not in self._io:
            _err(self._logger, f"ICudaEngine: tensor name '{name}' not found")
            return None
        return self._io[name]

    def get_tensor_name(self, index: int) -> Optional[str]:
        return self._names[index] if 0 <= index < len(self._names) else None

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        t = self._get(name)
        return t["mode"] if t else TensorIOMode.NONE

    def get_tensor_dtype(self, name: str) -> DataType:
        t = self._get(name)
        return DataType(t["dtype"]) if t else DataType.FLOAT

    def get_tensor_shape(self, name: str) -> Dims:
        t = self._get(name)
        return Dims(t["shape"]) if t else Dims(())

    def get_tensor_format(self, name: str) -> TensorFormat:
        t = self._get(name)
        return TensorFormat(t["format"]) if t else TensorFormat.LINEAR

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list:
        t = self._get(name)
        if not t or t["mode"] != TensorIOMode.INPUT or profile_index != 0:
            return []
        return [Dims(s) for s in t["profile"]]

    def create_execution_context(self) -> "IExecutionContext":
        return IExecutionContext(self)


class IExecutionContext:
    def __init__(self, engine: ICudaEngine) -> None:
        self.engine, self._log = engine, engine._logger
        self._shapes: dict[str, tuple] = {}
        self._addr: dict[str, int] = {}
        self.enqueues: list[dict] = []

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        t = self.engine._get(name)
        if t is None or t["mode"] != TensorIOMode.INPUT:
            if t is not None:
                _err(self._log, f"setInputShape: '{name}' is not an input")
            return False
        shape = tuple(_need_int(int(d), "shape") for d in shape)
        lo, _, hi = t["profile"]
        if len(shape) != len(t["shape"]) or any(s != -1 and s != v for s, v in zip(t["shape"], shape)):
            _err(self._log, f"setInputShape: {name} {shape} does not match network dims {t['shape']}")
            return False
        if any(not (a <= v <= b) for a, v, b in zip(lo, shape, hi)):
            _err(self._log, f"IExecutionContext::setInputShape: Error Code 3: API Usage Error (Given invalid "
                            f"tensor shape {shape} for {name}: outside the profile [{lo}, {hi}])")
            return False
        self._shapes[name] = shape
        return True

    def get_tensor_shape(self, name: str) -> Dims:
        t = self.engine._get(name)
        if t is None:
            return Dims(())
        if t["mode"] == TensorIOMode.INPUT:
            return Dims(self._shapes.get(name, t["shape"]))
        batch = next(iter(self._shapes.values()), None)
        return Dims(batch[0] if (d == -1 and batch) else d for d in t["shape"])

    def set_tensor_address(self, name: str, memory: int) -> bool:
        ptr = _need_int(memory, "set_tensor_address")
        if self.engine._get(name) is None:
            return False
        if ptr == 0 or ptr % _ALIGN:
            _err(self._log, f"setTensorAddress: address {ptr:#x} of '{name}' is not {_ALIGN}-byte aligned")
            return False
        self._addr[name] = ptr
        return True

    def get_tensor_address(self, name: str) -> int:
        return self._addr.get(name, 0)

    def infer_shapes(self) -> list[str]:
        return [n for n, t in self.engine._io.items() if t["mode"] == TensorIOMode.INPUT and n not in self._shapes]

    def execute_async_v3(self, stream_handle: int) -> bool:
        stream = _need_int(stream_handle, "execute_async_v3")
        if stream == 0:
            _err(self._log, "fake TensorRT: refusing the default stream (handle 0); use a dedicated stream")
            return False
        missing = self.infer_shapes()
        if missing:
            _err(self._log, f"enqueueV3: input shapes not specified: {missing}")
            return False
        unset = [n for n in self.engine._names if n not in self._addr]
        if unset:
            _err(self._log, f"enqueueV3: tensor addresses not set: {unset}")
            return False
        feeds = {}
        for name, t in self.engine._io.items():
            if t["mode"] != TensorIOMode.INPUT:
                continue
            shape = self._shapes[name]
            if t["format"] == TensorFormat.HWC:  # memory is N,H,W,C for a logical NCHW tensor
                n, c, h, w = shape
                feeds[name] = np.ascontiguousarray(_read(self._addr[name], (n, h, w, c), t["dtype"]).transpose(0, 3, 1, 2))
            else:
                feeds[name] = _read(self._addr[name], shape, t["dtype"]).copy()
        outs = self.engine._session.run(None, feeds)
        for (name, t), value in zip(((n, self.engine._io[n]) for n in self.engine._names
                                     if self.engine._io[n]["mode"] == TensorIOMode.OUTPUT), outs):
            dst = _read(self._addr[name], value.shape, t["dtype"])
            dst[...] = value.astype(dst.dtype)
        self.enqueues.append({"stream": stream, "shapes": dict(self._shapes), "addresses": dict(self._addr)})
        self.engine._owner.executions += 1
        return True


def _read(ptr: int, shape: tuple, dtype: int) -> np.ndarray:
    """A numpy view of host memory at `ptr` (the fake's stand-in for device memory)."""
    np_dtype = np.dtype(_NP[DataType(dtype)])
    count = int(np.prod(shape)) * np_dtype.itemsize
    buf = (ctypes.c_uint8 * count).from_address(ptr)
    return np.ctypeslib.as_array(buf).view(np_dtype).reshape(shape)
