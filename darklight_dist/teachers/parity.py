"""Start-up parity: the chosen backend's logits against an fp32 reference on one validation batch."""

from __future__ import annotations

import copy
import logging
from typing import Callable, Iterable, Optional, Union

import torch
from torch import nn

from ..config import Config
from ..errors import TeacherError
from .base import Teacher

log = logging.getLogger(__name__)

Reference = Union[Teacher, Callable[[torch.Tensor], torch.Tensor]]


@torch.no_grad()
def check_parity(teacher: Teacher, reference: Reference, images: torch.Tensor) -> dict:
    """Top-1 agreement and max |logit difference| of `teacher` vs `reference` on `images`."""
    got = teacher(images).float()
    ref_in = images
    ref_device = getattr(reference, "device", None)
    if ref_device is not None and torch.device(ref_device).type != images.device.type:
        ref_in = images.to(ref_device)
    ref = reference(ref_in).float().to(got.device)
    if got.shape != ref.shape:
        raise TeacherError(f"teacher logits {list(got.shape)} and reference logits {list(ref.shape)} differ in shape.")
    agree = (got.argmax(1) == ref.argmax(1)).float().mean().item()
    return {"top1_agreement": agree, "max_abs_diff": (got - ref).abs().max().item(), "n": int(images.shape[0])}


def _reference(cfg: Config, teacher: Teacher, spec, num_classes: int,
               device: torch.device) -> tuple[Optional[Reference], str]:
    """An fp32 reference for `teacher`, or (None, why) when the teacher is its own reference."""
    from .select import is_onnx_spec
    from .torch import TorchTeacher, build_torch_teacher
    info = teacher.info
    model = getattr(teacher, "reference_model", None)  # set by build_teacher: the exact fp32 weights
    if model is not None:
        return TorchTeacher(model, num_classes=num_classes, device=device), "torch-fp32-eager"
    if is_onnx_spec(spec):
        if info.backend == "onnxruntime" and device.type == "cpu":
            return None, "itself (ONNX Runtime CPU is the reference for an ONNX teacher)"
        from .onnxruntime import OnnxRuntimeTeacher
        return OnnxRuntimeTeacher(spec, device=torch.device("cpu")), "onnxruntime-cpu"
    if info.backend == "torch" and info.precision == "fp32" and not info.extra.get("compile") \
            and not info.extra.get("cuda_graph"):
        return None, "itself (eager fp32 torch is the reference)"
    model = copy.deepcopy(spec) if isinstance(spec, nn.Module) else spec  # never convert the teacher's own module
    return build_torch_teacher(model, cfg.teacher.weights, num_classes=num_classes, device=device,
                               precision="fp32"), "torch-fp32-eager"


def teacher_parity(cfg: Config, teacher: Teacher, spec, images: torch.Tensor, num_classes: int,
                   device: torch.device) -> dict:
    """Compare the teacher with its fp32 reference on one batch; TeacherError beyond --teacher-parity-tol."""
    reference, name = _reference(cfg, teacher, spec, num_classes, device)
    tol = cfg.teacher.parity_tolerance
    if reference is None:
        result = {"top1_agreement": 1.0, "max_abs_diff": 0.0, "n": int(images.shape[0])}
    else:
        result = check_parity(teacher, reference, images)
        if hasattr(reference, "close"):
            reference.close()
    if hasattr(teacher, "reference_model"):
        teacher.reference_model = None  # type: ignore[attr-defined]  # free the fp32 copy once checked
    result.update(backend=teacher.info.backend, precision=teacher.info.precision, reference=name, tolerance=tol,
                  ok=1.0 - result["top1_agreement"] <= tol)
    log.info("teacher parity (%s %s vs %s) on %d images: top-1 agreement %.4f, max |diff| %.3g",
             result["backend"], result["precision"], name, result["n"], result["top1_agreement"],
             result["max_abs_diff"])
    if not result["ok"]:
        raise TeacherError(
            f"teacher parity check failed: the {result['backend']} ({result['precision']}) teacher agrees with the "
            f"{name} reference on only {100 * result['top1_agreement']:.1f}% of top-1 predictions of "
            f"{result['n']} validation images (allowed disagreement {100 * tol:.1f}%, max |logit diff| "
            f"{result['max_abs_diff']:.3g}). Try --teacher-precision fp32, another --teacher-backend, or raise "
            "--teacher-parity-tol if this is expected.")
    return result


@torch.no_grad()
def teacher_top1(teacher: Teacher, batches: Iterable) -> float:
    """Top-1 accuracy of the teacher over labelled batches (Batch or (images, labels); honours Batch.valid)."""
    correct = total = 0
    for b in batches:
        images, labels = (b.images, b.labels) if hasattr(b, "images") else b
        valid = getattr(b, "valid", None) or images.shape[0]
        pred = teacher(images).argmax(1)[:valid]
        correct += int((pred == labels[:valid].to(pred.device)).sum())
        total += valid
    return correct / max(total, 1)
