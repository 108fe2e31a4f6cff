"""Fake TensorRT build side: network, ONNX parser, optimization profile, builder config, builder."""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import TYPE_CHECKING, Optional

from .core import (_FROM_ONNX, _MAGIC, DataType, Dims, IHostMemory, ILogger, MemoryPoolType, TensorFormat,
                   _check_logger, _err, _need_int)

if TYPE_CHECKING:
    from . import FakeTRT


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
