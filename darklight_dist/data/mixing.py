"""Mixup and CutMix on the device, applied once per batch before the teacher sees it.

Both models then see the same mixed image (the "consistent" of Beyer et al. 2021). Each sample is
mixed with its mirror in the batch (`flip(0)`, as timm does), so no device RNG and no host sync is
needed: the mixing coefficient and box come from a host-side numpy Generator, whose state is part
of the checkpoint.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F


class Mixer:
    """Mixes images and builds the matching soft label targets; identity when both alphas are 0."""

    def __init__(self, *, mixup_alpha: float, cutmix_alpha: float, num_classes: int, seed: int, rank: int,
                 switch_prob: float = 0.5) -> None:
        self.mixup_alpha, self.cutmix_alpha, self.num_classes = mixup_alpha, cutmix_alpha, num_classes
        self.switch_prob = switch_prob
        self.rng = np.random.default_rng([seed, rank, 0x6D6978])  # distinct stream per rank
        self.last_lam: Optional[float] = None

    @property
    def active(self) -> bool:
        """Whether any mixing is configured."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def __call__(self, images: torch.Tensor, labels: Optional[torch.Tensor]) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(mixed images, targets): targets are a float distribution when mixed, else the labels."""
        if not self.active:
            return images, labels
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or self.rng.random() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(self.rng.beta(alpha, alpha))
        partner = images.flip(0)
        if use_cutmix:
            images, lam = self._cutmix(images, partner, lam)
        else:
            images = images * lam + partner * (1.0 - lam)
        self.last_lam = lam
        if labels is None:
            return images, None
        one_hot = F.one_hot(labels, self.num_classes).to(images.dtype if images.is_floating_point() else torch.float32)
        return images, one_hot * lam + one_hot.flip(0) * (1.0 - lam)

    def _cutmix(self, images: torch.Tensor, partner: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
        """Paste a box of relative area 1-lam from the partner; lam is corrected to the clipped box."""
        h, w = images.shape[-2:]
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(self.rng.integers(h)), int(self.rng.integers(w))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        out = images.clone()
        out[..., y0:y1, x0:x1] = partner[..., y0:y1, x0:x1]
        return out, 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)

    def state_dict(self) -> dict[str, Any]:
        """The generator's state as plain types (checkpointed per rank)."""
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the generator."""
        self.rng.bit_generator.state = state["bit_generator"]


def mixing_alphas(kd: str, mixup_alpha: Optional[float], cutmix_alpha: Optional[float]) -> tuple[float, float]:
    """Resolve the method defaults: function matching mixes every batch (mixup, lam ~ U[0,1] = Beta(1,1))."""
    if mixup_alpha is None and cutmix_alpha is None and kd == "fm":
        return 1.0, 0.0
    return mixup_alpha or 0.0, cutmix_alpha or 0.0
