"""Which teacher backend runs, and why: TensorRT, else ONNX Runtime, else torch (`--teacher-backend auto`)."""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from ..config import Config
from ..errors import ConfigError, DarklightError, TeacherError
from .base import Teacher
from .engine_cache import file_lock
from .export import default_export_path, export_onnx, read_signature, resolve_model
from .torch import build_torch_teacher, sha256_file, sha256_state_dict

log = logging.getLogger(__name__)

Spec = Union[str, os.PathLike, nn.Module]


def is_onnx_spec(spec: Spec) -> bool:
    """True for a path ending in .onnx."""
    return isinstance(spec, (str, os.PathLike)) and str(spec).lower().endswith(".onnx")


def _tensorrt_status(device: torch.device) -> tuple[Optional[Any], str]:
    """(trt module or None, why) for the auto choice."""
    if device.type != "cuda":
        return None, f"the device is {device.type}, TensorRT needs CUDA"
    from .tensorrt_build import import_tensorrt
    try:
        trt = import_tensorrt()
    except ConfigError as e:
        return None, f"tensorrt is not importable ({str(e).split('(', 1)[-1].split(')')[0]})"
    return trt, f"TensorRT {trt.__version__} is importable and the device is cuda"


def _onnxruntime_status(device: torch.device) -> tuple[bool, str]:
    try:
        import onnxruntime as ort
    except ImportError as e:
        return False, f"onnxruntime is not importable ({e})"
    if device.type == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        return False, "onnxruntime has no CUDAExecutionProvider"
    return True, f"onnxruntime {ort.__version__} is importable"


def choose_backend(requested: str, spec: Spec, device: torch.device) -> tuple[str, str]:
    """The backend to use for `spec` on `device` and the reason, following --teacher-backend."""
    onnx = is_onnx_spec(spec)
    if requested == "torch":
        if onnx:
            raise ConfigError(f"--teacher {spec} is an ONNX file: use --teacher-backend onnxruntime or tensorrt "
                              "(torch runs model names, module:callable and builtin teachers).")
        return "torch", "torch requested"
    if requested == "tensorrt":
        from .tensorrt_build import import_tensorrt
        trt = import_tensorrt()  # ConfigError with install advice when missing
        return "tensorrt", f"tensorrt requested (TensorRT {trt.__version__})"
    if requested == "onnxruntime":
        from .onnxruntime import import_onnxruntime
        import_onnxruntime()
        return "onnxruntime", "onnxruntime requested"
    if requested != "auto":
        raise ConfigError(f"--teacher-backend {requested}: use auto, tensorrt, onnxruntime or torch.")
    trt, why_not_trt = _tensorrt_status(device)
    if trt is not None:
        return "tensorrt", f"auto: {why_not_trt}"
    ort_ok, why_ort = _onnxruntime_status(device)
    if ort_ok:
        kind = "an ONNX file" if onnx else "exportable to ONNX"
        return "onnxruntime", f"auto: {why_not_trt}; {why_ort} and the teacher is {kind}"
    if onnx:
        raise ConfigError(f"--teacher {spec} is ONNX but neither TensorRT ({why_not_trt}) nor ONNX Runtime "
                          f"({why_ort}) can run it here. pip install onnxruntime (CPU) or onnxruntime-gpu.")
    return "torch", f"auto: {why_not_trt}; {why_ort}"


def _export_name(model: nn.Module, num_classes: int, image_size: int, precision: str) -> str:
    # Keyed on the weights themselves: a randomly initialized teacher never reuses a stale export.
    h = hashlib.sha256()
    for part in (sha256_state_dict(model.state_dict()), type(model).__qualname__, num_classes, image_size,
                 precision, torch.__version__):
        h.update(str(part).encode() + b"\0")
    return f"teacher-{h.hexdigest()[:24]}"


def ensure_exported(model: nn.Module, *, num_classes: int, image_size: int, precision: str) -> Path:
    """Export a torch teacher to ONNX once per node (file lock) into $DARKLIGHT_CACHE/onnx; reuse it later."""
    path = default_export_path(_export_name(model, num_classes, image_size, precision))
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_suffix(".lock")):
        if path.is_file():
            return path
        tmp_dir = path.parent / f".{path.stem}.{os.getpid()}.tmp"
        shutil.rmtree(tmp_dir, ignore_errors=True)
        try:
            report = export_onnx(model, tmp_dir / path.name, num_classes=num_classes, image_size=image_size,
                                 precision=precision)
            for f in report.files[1:]:  # external data first: the .onnx appearing is the commit mark
                os.replace(f, path.parent / f.name)
            os.replace(report.path, path)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


def build_teacher(cfg: Config, spec: Optional[Spec], *, num_classes: int,
                  device: torch.device) -> tuple[Teacher, str]:
    """Build the teacher for `spec` on `device`; returns it and the reason its backend was chosen."""
    if spec is None:
        raise ConfigError("--kd needs a teacher: give --teacher (FILE.onnx, a model name or module:callable), "
                          "or use --kd none.")
    t = cfg.teacher
    image_size = t.input_size or cfg.data.image_size
    backend, why = choose_backend(t.backend, spec, device)
    onnx = is_onnx_spec(spec)
    # The fp32 module with its weights: what ONNX is exported from, and the parity reference.
    module = None if onnx else resolve_model(spec, t.weights, num_classes,  # type: ignore[arg-type]
                                             flag="--teacher-weights", role="teacher")
    reference: Optional[nn.Module] = None
    onnx_path: Optional[Path] = Path(spec) if onnx else None  # type: ignore[arg-type]
    # Identity of a torch teacher, whatever runs it: the weights (file, else the fp32 state_dict).
    # Not the ONNX bytes: a re-export after a cache wipe must not make checkpoints unresumable.
    weights_sha = None if module is None else (sha256_file(t.weights) if t.weights
                                               else sha256_state_dict(module.state_dict()))
    if backend != "torch" and module is not None:
        if t.precision == "bf16" and backend == "onnxruntime":
            raise ConfigError("--teacher-precision bf16 is not supported by the onnxruntime backend; use fp32/fp16 "
                              "or --teacher-backend torch.")
        # Export the precision the engine runs; bf16 (TensorRT 10 only) goes through a builder flag.
        try:
            onnx_path = ensure_exported(module, num_classes=num_classes, image_size=image_size,
                                        precision="fp16" if t.precision == "fp16" else "fp32")
        except DarklightError as e:
            if t.backend != "auto":
                raise
            why, backend = f"{why}; but the ONNX export failed ({e}), so torch", "torch"
        else:
            why, reference = f"{why}; exported to {onnx_path}", module
    if onnx_path is not None and backend != "torch":
        sig = read_signature(onnx_path)  # TeacherError naming the file if it does not parse
        if sig.num_classes != num_classes:
            raise TeacherError(f"teacher has {sig.num_classes} classes, the data {num_classes}: {onnx_path} was "
                               f"exported for another data set. Re-export with --num-classes {num_classes}, or "
                               "check --data-path.")
    if backend == "torch":
        assert module is not None
        if t.precision != "fp32" or t.compile or t.cuda_graph:
            reference = copy.deepcopy(module)  # the teacher converts its module in place
        teacher: Teacher = build_torch_teacher(module, None, num_classes=num_classes, device=device,
                                               precision=t.precision, channels_last=cfg.run.channels_last,
                                               compile=t.compile, input_size=t.input_size,
                                               cuda_graph=t.cuda_graph)
    elif backend == "onnxruntime":
        from .onnxruntime import OnnxRuntimeTeacher
        teacher = OnnxRuntimeTeacher(onnx_path, device=device, num_classes=num_classes)
    else:
        from .tensorrt import build_tensorrt_teacher
        teacher = build_tensorrt_teacher(onnx_path, device=device, num_classes=num_classes, precision=t.precision,
                                         layout="nhwc" if cfg.run.channels_last else "nchw",
                                         max_batch=t.max_batch_size or cfg.optim.batch_size,
                                         image_size=image_size, cache_dir=t.engine_cache)
    if weights_sha is not None:
        if backend != "torch":
            teacher.info.extra["onnx_sha256"] = teacher.info.model_sha256
        teacher.info.model_sha256 = weights_sha
    teacher.reference_model = reference  # type: ignore[attr-defined]  # read (then dropped) by teacher_parity
    log.info("teacher backend: %s (%s)", backend, why)
    teacher.info.extra["backend_reason"] = why
    return teacher, why
