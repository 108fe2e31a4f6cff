"""Distillation objectives as pure functions: loss(student_logits, teacher_logits, labels) -> (loss, parts).

`labels` is int64 `[N]`, a float `[N, C]` distribution (mixup/cutmix targets), or None (label-free).
Every returned part is a detached scalar for logging.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

Parts = dict[str, torch.Tensor]


def _wide(x: torch.Tensor) -> torch.Tensor:
    """Half-precision logits (autocast) are widened to fp32 for the softmax; fp32/fp64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


LossFn = Callable[[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]], tuple[torch.Tensor, Parts]]


def kl_div(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean over the batch of KL(softmax(t/T) || softmax(s/T)), summed over classes (no T² factor)."""
    log_p_s = F.log_softmax(_wide(student_logits) / temperature, dim=-1)
    log_p_t = F.log_softmax(_wide(teacher_logits) / temperature, dim=-1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean()


def label_ce(student_logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against int labels or a target distribution, with label smoothing."""
    if labels.dtype.is_floating_point:  # mixed targets: smooth the distribution, then soft CE
        n = student_logits.shape[-1]
        target = labels * (1.0 - label_smoothing) + label_smoothing / n
        return -(target * F.log_softmax(_wide(student_logits), -1)).sum(-1).mean()
    return F.cross_entropy(_wide(student_logits), labels, label_smoothing=label_smoothing)


def _mix(kd: torch.Tensor, alpha: float, student_logits: torch.Tensor, labels: Optional[torch.Tensor],
         label_smoothing: float) -> tuple[torch.Tensor, Parts]:
    if alpha >= 1.0 or labels is None:
        return kd, {"loss": kd.detach(), "kd": kd.detach()}
    ce = label_ce(student_logits, labels, label_smoothing)
    loss = alpha * kd + (1.0 - alpha) * ce
    return loss, {"loss": loss.detach(), "kd": kd.detach(), "ce": ce.detach()}


def soft_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: Optional[torch.Tensor], *,
            temperature: float = 1.0, alpha: float = 0.5, label_smoothing: float = 0.0) -> tuple[torch.Tensor, Parts]:
    """Hinton et al. 2015: alpha * T² * KL(p_t^T || p_s^T) + (1 - alpha) * CE(s, y).

    The T² factor keeps the soft term's gradient magnitude independent of T (Hinton et al., §2).
    """
    kd = kl_div(student_logits, teacher_logits, temperature) * temperature**2
    return _mix(kd, alpha, student_logits, labels, label_smoothing)


def hard_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: Optional[torch.Tensor], *,
            alpha: float = 0.5, label_smoothing: float = 0.0, **_: float) -> tuple[torch.Tensor, Parts]:
    """DeiT (Touvron et al. 2021, eq. 3): alpha * CE(s, argmax t) + (1 - alpha) * CE(s, y); alpha=0.5 averages."""
    kd = F.cross_entropy(_wide(student_logits), teacher_logits.argmax(-1))
    return _mix(kd, alpha, student_logits, labels, label_smoothing)


def function_matching(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: Optional[torch.Tensor], *,
                      temperature: float = 1.0, **_: float) -> tuple[torch.Tensor, Parts]:
    """Beyer et al. 2021 ("A good teacher is patient and consistent"): T² * KL(p_t^T || p_s^T), no label term.

    The paper uses T = 1; the images are the same mixed view for both models (see data/mixing.py).
    """
    kd = kl_div(student_logits, teacher_logits, temperature) * temperature**2
    return kd, {"loss": kd.detach(), "kd": kd.detach()}


def cross_entropy(student_logits: torch.Tensor, teacher_logits: Optional[torch.Tensor],
                  labels: Optional[torch.Tensor], *, label_smoothing: float = 0.0, **_: float) -> tuple[torch.Tensor, Parts]:
    """Plain supervised training (`--kd none`): the teacher is not used."""
    assert labels is not None, "--kd none needs labels"
    ce = label_ce(student_logits, labels, label_smoothing)
    return ce, {"loss": ce.detach(), "ce": ce.detach()}


LOSSES: dict[str, Callable[..., tuple[torch.Tensor, Parts]]] = {
    "soft": soft_kd, "hard": hard_kd, "fm": function_matching, "none": cross_entropy,
}


def build_loss(kd: str, *, temperature: float, alpha: float, label_smoothing: float) -> LossFn:
    """Bind the hyper-parameters of objective `kd` into a loss(student, teacher, labels) function."""
    fn = LOSSES[kd]

    def loss(s: torch.Tensor, t: Optional[torch.Tensor], y: Optional[torch.Tensor]) -> tuple[torch.Tensor, Parts]:
        return fn(s, t, y, temperature=temperature, alpha=alpha, label_smoothing=label_smoothing)

    return loss
