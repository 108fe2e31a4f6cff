"""Validation: student top-1/top-5, and teacher top-1, teacher-student agreement and KL on the same images."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import nn

from .data.batch import Loader
from .distributed import all_reduce_sum
from .losses import kl_div


@torch.no_grad()
def evaluate(model: nn.Module, loader: Loader, *, teacher: Optional[Callable[[torch.Tensor], torch.Tensor]],
             teacher_view: Callable[[torch.Tensor], torch.Tensor], device: torch.device,
             autocast: Callable[[], Any]) -> dict[str, float]:
    """Every val image counted once across ranks (Batch.valid excludes padding)."""
    was_training = model.training
    model.eval()
    keys = ("n", "top1", "top5", "t_top1", "agree", "kl")
    acc = torch.zeros(len(keys), dtype=torch.float64, device=device)
    for batch in loader:
        n = batch.valid if batch.valid is not None else len(batch)
        x, y = batch.images[:n], batch.labels[:n]
        with autocast():
            s = model(x).float()
        top5 = s.topk(min(5, s.shape[1]), dim=1).indices
        acc[0] += n
        acc[1] += (top5[:, 0] == y).sum()
        acc[2] += (top5 == y[:, None]).any(1).sum()
        if teacher is not None:
            t = teacher(teacher_view(x)).float()
            acc[3] += (t.argmax(1) == y).sum()
            acc[4] += (t.argmax(1) == top5[:, 0]).sum()
            acc[5] += kl_div(s, t) * n
    all_reduce_sum(acc)
    model.train(was_training)
    v = dict(zip(keys, acc.tolist()))
    total = max(v["n"], 1.0)
    out = {"val_images": int(v["n"]), "top1": 100 * v["top1"] / total, "top5": 100 * v["top5"] / total}
    if teacher is not None:
        out.update(teacher_top1=100 * v["t_top1"] / total, agreement=100 * v["agree"] / total, kl=v["kl"] / total)
    return out
