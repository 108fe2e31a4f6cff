"""Torch model -> ONNX (fp32/fp16, dynamic batch), validated by the ONNX checker and a parity run.

TensorRT 11 is strongly typed: the dtypes in the ONNX *are* the engine precision, so an fp16
engine needs an fp16 export. The graph always has one input "images" `[batch, 3, S, S]` and
one output "logits" `[batch, num_classes]`, with the batch dimension named "batch".
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, TeacherError
from ..models import build_model

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAME = "logits"
BATCH_DIM = "batch"
_TWO_GB = 2 * 1024 ** 3
_ONNX_DTYPES = {1: "fp32", 10: "fp16", 16: "bf16"}  # onnx.TensorProto enum values
TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
NUMPY_DTYPES = {"fp32": np.float32, "fp16": np.float16}
# Allowed |onnx - torch fp32| = atol + rtol * max|torch fp32 logits|; fp16 rounds every layer.
PARITY_TOL = {"fp32": (1e-4, 1e-3), "fp16": (2e-2, 2e-2)}


@dataclass
class OnnxSignature:
    """What the backends need to know about an exported classifier graph."""

    path: Path
    input_name: str
    output_name: str
    precision: str
    """dtype of the input tensor: "fp32" | "fp16" | "bf16"."""
    input_shape: tuple
    """Input dims; a str (dim_param) or None for symbolic ones, e.g. ("batch", 3, 224, 224)."""
    num_classes: int
    files: list[Path] = field(default_factory=list)
    """The .onnx file and its external-data files."""

    @property
    def image_size(self) -> Optional[int]:
        """Static square side of the input, None when H or W is symbolic."""
        h, w = self.input_shape[2], self.input_shape[3]
        return h if isinstance(h, int) and h == w else None


def _dims(value_info) -> tuple:
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                 for d in value_info.type.tensor_type.shape.dim)


def onnx_files(path: Union[str, Path]) -> list[Path]:
    """The ONNX file followed by every external-data file its initializers reference."""
    import onnx
    path = Path(path)
    model = _load_proto(path)
    extra: list[Path] = []
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            loc = {e.key: e.value for e in init.external_data}.get("location")
            p = path.parent / loc if loc else None
            if p is not None and p not in extra:
                extra.append(p)
    return [path, *extra]


def onnx_sha256(path: Union[str, Path]) -> str:
    """sha256 over the ONNX bytes and its external data: a changed weight file changes the hash."""
    h = hashlib.sha256()
    for p in onnx_files(path):
        if not p.is_file():
            raise TeacherError(f"{path}: its external data file {p} is missing; ship it next to the .onnx.")
        h.update(p.name.encode())
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def _load_proto(path: Path):
    import onnx
    if not path.is_file():
        raise TeacherError(f"--teacher {path}: no such ONNX file.")
    try:  # external data is not needed to read the signature; keeps >2 GB models cheap
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf DecodeError and friends: not an ONNX file
        raise TeacherError(f"--teacher {path}: the file does not parse as ONNX ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'}). "
                           "Re-export it with python -m darklight_dist.export.") from None


def read_signature(path: Union[str, Path]) -> OnnxSignature:
    """Input/output names, dtype, shape and class count of a one-input one-output classifier ONNX."""
    path = Path(path)
    model = _load_proto(path)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise TeacherError(f"--teacher {path}: a teacher ONNX needs exactly one input and one output, it has "
                           f"{[i.name for i in inputs]} -> {[o.name for o in model.graph.output]}.")
    inp, out = inputs[0], model.graph.output[0]
    shape, out_shape = _dims(inp), _dims(out)
    if len(shape) != 4 or shape[1] != 3:
        raise TeacherError(f"--teacher {path}: input '{inp.name}' has shape {shape}; expected [batch, 3, H, W].")
    if len(out_shape) != 2 or not isinstance(out_shape[1], int) or out_shape[1] <= 0:
        raise TeacherError(f"--teacher {path}: output '{out.name}' has shape {out_shape}; expected "
                           "[batch, num_classes] with a static class count.")
    elem = inp.type.tensor_type.elem_type
    if elem not in _ONNX_DTYPES:
        raise TeacherError(f"--teacher {path}: input dtype {elem} is not float32/float16/bfloat16.")
    return OnnxSignature(path=path, input_name=inp.name, output_name=out.name, precision=_ONNX_DTYPES[elem],
                         input_shape=shape, num_classes=int(out_shape[1]), files=onnx_files(path))


def check_onnx(path: Union[str, Path]) -> None:
    """Run the ONNX checker on the path (so external data and >2 GB models work)."""
    import onnx
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:
        raise TeacherError(f"{path}: the ONNX checker rejects the model: {str(e).strip()[:500]}") from None


@dataclass
class ExportReport:
    """The result of one export: where, what, and how close ONNX Runtime is to torch."""

    path: Path
    files: list[Path]
    sha256: str
    precision: str
    exporter: str
    seconds: float
    max_abs_diff: float
    tolerance: float
    top1_agreement: float

    def as_dict(self) -> dict:
        """Plain-typed summary (JSON)."""
        return {"path": str(self.path), "files": [str(f) for f in self.files], "sha256": self.sha256,
                "precision": self.precision, "exporter": self.exporter, "seconds": round(self.seconds, 3),
                "max_abs_diff": self.max_abs_diff, "tolerance": self.tolerance,
                "top1_agreement": self.top1_agreement}


def resolve_model(spec: Union[str, nn.Module], weights: Optional[str], num_classes: int, *,
                  flag: str = "--weights", role: str = "model") -> nn.Module:
    """An nn.Module in eval mode from a spec (builtin / torchvision / timm:NAME / module:callable) and weights.

    `flag` and `role` only shape the error text ("--teacher-weights ... do not fit teacher ...").
    """
    from .torch import load_state_dict_file
    model = spec if isinstance(spec, nn.Module) else build_model(spec, num_classes)
    if weights:
        try:
            model.load_state_dict(load_state_dict_file(weights))
        except RuntimeError as e:
            mismatch = [ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln]
            hint = (f" The data has {num_classes} classes; the weights were trained for another count."
                    if mismatch and role == "teacher" else
                    f" Asked for {num_classes} classes; the weights were trained for another count."
                    if mismatch else "")
            first = (mismatch or str(e).splitlines())[0][:300].rstrip(".")
            raise TeacherError(f"{flag} {weights} do not fit {role} '{spec}': {first}.{hint}") from None
    return model.eval()


def _torch_export(model: nn.Module, example: torch.Tensor, out: Path, *, opset: int, dynamo: bool,
                  external_data: bool) -> None:
    names = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters warn about deprecations we do not control
        if dynamo:
            # Tuple form: the forward's argument name is the model's business, not ours.
            prog = torch.onnx.export(model, (example,), None, dynamo=True, verbose=False, report=False,
                                     dynamic_shapes=({0: torch.export.Dim(BATCH_DIM, min=1)},), **names)
            prog.save(str(out), external_data=external_data)
        else:
            torch.onnx.export(model, (example,), str(out), dynamo=False,
                              dynamic_axes={INPUT_NAME: {0: BATCH_DIM}, OUTPUT_NAME: {0: BATCH_DIM}}, **names)


def _param_bytes(model: nn.Module, precision: str) -> int:
    return sum(p.numel() for p in model.state_dict().values()) * (4 if precision == "fp32" else 2)


def export_onnx(spec: Union[str, nn.Module], out: Union[str, Path], *, num_classes: int, image_size: int,
                weights: Optional[str] = None, precision: str = "fp32", opset: int = 18,
                exporter: str = "dynamo", parity_batch: int = 4, seed: int = 0) -> ExportReport:
    """Export a classifier to ONNX with a dynamic batch, check it, and compare ONNX Runtime with torch fp32."""
    if precision not in NUMPY_DTYPES:
        raise ConfigError(f"--precision {precision}: export supports fp32 and fp16 (bf16 engines: export fp32 "
                          "and build with TensorRT 10's builder flag).")
    if exporter not in ("dynamo", "legacy"):
        raise ConfigError(f"--exporter {exporter}: use dynamo or legacy.")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    reference = resolve_model(spec, weights, num_classes)
    model = copy.deepcopy(reference).to(TORCH_DTYPES[precision]) if precision != "fp32" else reference
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(parity_batch, 3, image_size, image_size, generator=gen)
    external = _param_bytes(model, precision) >= _TWO_GB * 0.9  # protobuf's 2 GB limit, with headroom
    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            _torch_export(model, x[:2].to(TORCH_DTYPES[precision]), out, opset=opset,
                          dynamo=exporter == "dynamo", external_data=external)
    except Exception as e:
        hint = " Try --exporter legacy." if exporter == "dynamo" else ""
        raise TeacherError(f"exporting '{spec}' to ONNX failed: {type(e).__name__}: "
                           f"{str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}.{hint}") from None
    seconds = time.perf_counter() - t0
    check_onnx(out)
    sig = read_signature(out)
    if sig.num_classes != num_classes or sig.precision != precision:
        raise TeacherError(f"{out}: exported graph has {sig.num_classes} classes / {sig.precision}; expected "
                           f"{num_classes} / {precision}.")
    diff, agree, tol = _parity(reference, out, x, precision)
    report = ExportReport(path=out, files=sig.files, sha256=onnx_sha256(out), precision=precision,
                          exporter=exporter, seconds=seconds, max_abs_diff=diff, tolerance=tol,
                          top1_agreement=agree)
    if diff > tol:
        raise TeacherError(f"{out}: ONNX Runtime differs from torch by {diff:.3g} (> {tol:.3g}) on a batch of "
                           f"{parity_batch}; the export is not faithful. Try --exporter "
                           f"{'legacy' if exporter == 'dynamo' else 'dynamo'} or --precision fp32.")
    log.info("exported %s (%s, %s) in %.1fs: max |ort - torch| = %.3g, top-1 agreement %.3f",
             out, precision, exporter, seconds, diff, agree)
    return report


def _parity(reference: nn.Module, path: Path, x: torch.Tensor, precision: str) -> tuple[float, float, float]:
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    got = sess.run([OUTPUT_NAME], {INPUT_NAME: x.numpy().astype(NUMPY_DTYPES[precision])})[0].astype(np.float32)
    with torch.no_grad():
        ref = reference.float()(x).numpy()
    atol, rtol = PARITY_TOL[precision]
    tol = atol + rtol * float(np.abs(ref).max())
    agree = float((got.argmax(1) == ref.argmax(1)).mean())
    return float(np.abs(got - ref).max()), agree, tol


def default_export_path(name: str) -> Path:
    """Where auto-exported teachers live: $DARKLIGHT_CACHE/onnx/<name>.onnx."""
    root = Path(os.environ.get("DARKLIGHT_CACHE", Path.home() / ".cache" / "darklight_dist"))
    return root / "onnx" / f"{name}.onnx"
