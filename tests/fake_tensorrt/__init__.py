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

import ctypes
import enum
import hashlib
import json
import os
import time
import types
from typing import Any, Optional

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


class ITensor:
    def __init__(self, owner: "FakeTRT", name: str, shape: tuple, dtype: DataType, is_input: bool) -> None:
        self._owner, self.name, self.shape = owner, name, Dims(shape)
        self._dtype, self.is_network_input = dtype, is_input
        self._formats = 1 << int(TensorFormat.LINEAR)

    @property
    def dtype(self) -> DataType:
        return self._dtype

    @dtype.setter
    def dtype(self, value: DataType) -> None:
        if self._owner.major >= 11:  # strongly typed: def_property_readonly in the 11 bindings
            raise AttributeError("can't set attribute 'dtype' (TensorRT 11: I/O types come from the ONNX)")
        self._dtype = DataType(value)

    @property
    def allowed_formats(self) -> int:
        return self._formats

    @allowed_formats.setter
    def allowed_formats(self, mask: int) -> None:
        self._formats = _need_int(mask, "allowed_formats")


class INetworkDefinition:
    def __init__(self, owner: "FakeTRT", flags: int) -> None:
        self._owner, self.flags = owner, flags
        self._inputs: list[ITensor] = []
        self._outputs: list[ITensor] = []
        self._onnx: Optional[bytes] = None

    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))

    def get_input(self, i: int) -> Optional[ITensor]:
        return self._inputs[i] if 0 <= i < len(self._inputs) else None

    def get_output(self, i: int) -> Optional[ITensor]:
        return self._outputs[i] if 0 <= i < len(self._outputs) else None


class ParserError:
    def __init__(self, desc: str, node: int = -1) -> None:
        self._desc, self._node = desc, node

    def desc(self) -> str:
        return self._desc

    def code(self) -> int:
        return 1

    def node(self) -> int:
        return self._node

    def __str__(self) -> str:
        return f"In node {self._node} with name:  and operator:  (parseGraph): INVALID_GRAPH: {self._desc}"


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
        _check_logger(logger)
        self._net, self._logger, self._errors = network, logger, []

    num_errors = property(lambda self: len(self._errors))

    def get_error(self, i: int) -> Optional[ParserError]:
        return self._errors[i] if 0 <= i < len(self._errors) else None

    def clear_errors(self) -> None:
        self._errors = []

    def parse_from_file(self, path: str) -> bool:
        if not isinstance(path, str):
            raise TypeError("parse_from_file(): path must be a str")
        if not os.path.isfile(path):
            self._errors.append(ParserError(f"Failed to open file: {path}"))
            return False
        return self._parse(path)

    def parse(self, model: bytes, path: Optional[str] = None) -> bool:
        import onnx
        if path is None:
            try:
                proto = onnx.load_from_string(bytes(model))
            except Exception as e:
                self._errors.append(ParserError(f"Failed to parse ONNX model from bytes: {e}"))
                return False
            return self._from_proto(proto)
        return self._parse(path)

    def _parse(self, path: str) -> bool:
        import onnx
        try:
            proto = onnx.load(path)  # resolves external data next to the file, like the real parser
        except Exception as e:
            self._errors.append(ParserError(f"Failed to parse ONNX model from file {path}: {type(e).__name__}"))
            return False
        return self._from_proto(proto)

    def _from_proto(self, proto) -> bool:
        import onnx
        try:
            onnx.checker.check_model(proto)
        except Exception as e:
            self._errors.append(ParserError(f"ModelImporter: invalid graph: {str(e)[:200]}"))
            return False
        opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
        if opset > 25 or opset < 9:
            self._errors.append(ParserError(f"Unsupported ONNX opset {opset}"))
            return False
        inits = {i.name for i in proto.graph.initializer}
        owner = self._net._owner

        def dims(vi) -> tuple:
            return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim)

        def dtype(vi) -> DataType:
            return _FROM_ONNX[vi.type.tensor_type.elem_type]

        self._net._inputs = [ITensor(owner, i.name, dims(i), dtype(i), True)
                             for i in proto.graph.input if i.name not in inits]
        self._net._outputs = [ITensor(owner, o.name, dims(o), dtype(o), False) for o in proto.graph.output]
        self._net._onnx = proto.SerializeToString()
        return True


class IOptimizationProfile:
    def __init__(self) -> None:
        self._shapes: dict[str, tuple] = {}
        self._valid = True

    def set_shape(self, input: str, min: tuple, opt: tuple, max: tuple) -> None:
        lo, mid, hi = tuple(min), tuple(opt), tuple(max)
        if not (len(lo) == len(mid) == len(hi)) or any(not (0 <= a <= b <= c) for a, b, c in zip(lo, mid, hi)):
            self._valid = False  # the real profile reports through the error recorder; add_* returns -1
        self._shapes[input] = (lo, mid, hi)

    def get_shape(self, input: str) -> list:
        return [Dims(s) for s in self._shapes.get(input, ((), (), ()))]


class ITimingCache:
    def __init__(self, entries: dict) -> None:
        self.entries = dict(entries)

    def serialize(self) -> IHostMemory:
        return IHostMemory(b"FAKETC" + json.dumps(self.entries, sort_keys=True).encode())

    def combine(self, other: "ITimingCache", ignore_mismatch: bool) -> bool:
        self.entries.update(other.entries)
        return True


class IBuilderConfig:
    def __init__(self, owner: "FakeTRT") -> None:
        self._owner = owner
        self._flags: set[int] = set()
        self.profiles: list[IOptimizationProfile] = []
        self.pool_limits: dict[int, int] = {}
        self._timing: Optional[ITimingCache] = None

    def set_flag(self, flag) -> None:
        self._flags.add(int(flag))

    def clear_flag(self, flag) -> None:
        self._flags.discard(int(flag))

    def get_flag(self, flag) -> bool:
        return int(flag) in self._flags

    def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
        self.pool_limits[int(pool)] = _need_int(size, "set_memory_pool_limit")

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        if not profile._valid or not profile._shapes:
            return -1
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, serialized: bytes) -> Optional[ITimingCache]:
        data = bytes(serialized)
        if not data:
            return ITimingCache({})
        if not data.startswith(b"FAKETC"):
            return None
        try:
            return ITimingCache(json.loads(data[6:]))
        except ValueError:
            return None

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        if not isinstance(cache, ITimingCache) or not isinstance(ignore_mismatch, bool):
            raise TypeError("set_timing_cache(cache: ITimingCache, ignore_mismatch: bool)")
        self._timing = cache
        return True

    def get_timing_cache(self) -> Optional[ITimingCache]:
        return self._timing


class Builder:
    def __init__(self, logger: ILogger) -> None:
        _check_logger(logger)
        self._logger = logger
        self._owner: FakeTRT = self._fake  # type: ignore[attr-defined]  # set by the per-fake subclass

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition(self._owner, _need_int(flags, "create_network"))

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig(self._owner)

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> Optional[IHostMemory]:
        log, fake = self._logger, self._owner
        if network._onnx is None or not network._inputs:
            _err(log, "Network must have at least one input and one output")
            return None
        prof = config.profiles[0] if config.profiles else None
        inputs = []
        for t in network._inputs:
            dynamic = any(d == -1 for d in t.shape)
            if prof is None or t.name not in prof._shapes:
                if dynamic:
                    _err(log, f"Network has dynamic or shape inputs, but no optimization profile has been "
                              f"defined (input '{t.name}').")
                    return None
                shapes = (tuple(t.shape),) * 3
            else:
                shapes = prof._shapes[t.name]
                for s in shapes:
                    if len(s) != len(t.shape) or any(d != -1 and d != v for d, v in zip(t.shape, s)):
                        _err(log, f"{t.name}: profile shape {s} does not match network dims {tuple(t.shape)}")
                        return None
            fmt = TensorFormat.LINEAR
            if t.allowed_formats == 1 << int(TensorFormat.HWC):
                if len(t.shape) < 3 or t.dtype not in (DataType.FLOAT, DataType.HALF):
                    _err(log, f"{t.name}: HWC format needs rank >= 3 and FP32/FP16")
                    return None
                fmt = TensorFormat.HWC
            elif t.allowed_formats != 1 << int(TensorFormat.LINEAR):
                _err(log, f"{t.name}: fake supports LINEAR or HWC only (mask {t.allowed_formats})")
                return None
            inputs.append({"name": t.name, "dtype": int(t.dtype), "shape": list(t.shape), "format": int(fmt),
                           "profile": [list(s) for s in shapes]})
        outputs = [{"name": t.name, "dtype": int(t.dtype), "shape": list(t.shape)} for t in network._outputs]
        onnx_sha = hashlib.sha256(network._onnx).hexdigest()
        if config._timing is not None:
            fake.timing_cache_hits += int(onnx_sha in config._timing.entries)
            config._timing.entries[onnx_sha] = "tactics"
        if os.environ.get("FAKE_TRT_BUILD_SECONDS"):
            time.sleep(float(os.environ["FAKE_TRT_BUILD_SECONDS"]))
        if os.environ.get("FAKE_TRT_BUILD_LOG"):
            with open(os.environ["FAKE_TRT_BUILD_LOG"], "a") as f:
                f.write(f"{os.getpid()} {fake.__version__} {onnx_sha[:12]}\n")
        fake.builds += 1
        header = json.dumps({"version": fake.__version__, "inputs": inputs, "outputs": outputs,
                             "flags": sorted(config._flags)}).encode()
        body = len(header).to_bytes(8, "little") + header + network._onnx
        return IHostMemory(_MAGIC + hashlib.sha256(body).digest() + body)


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
