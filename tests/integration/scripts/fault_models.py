"""Students that misbehave on purpose, given to the CLI as `--model tests.integration.scripts.fault_models:NAME`."""

from __future__ import annotations

import os

import torch
from torch import nn

from darklight_dist.models import tiny_mlp


class NaNFromStep(nn.Module):
    """tiny-mlp whose training logits are NaN at forward DARKLIGHT_NAN_STEP (1-based) and, if
    DARKLIGHT_NAN_STEPS is set, for that many forwards only (else from then on)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.net = tiny_mlp(num_classes)
        self.first = int(os.environ.get("DARKLIGHT_NAN_STEP", "1"))
        self.count = int(os.environ.get("DARKLIGHT_NAN_STEPS", "1000000000"))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        if not self.training:
            return y
        self.calls += 1
        if self.first <= self.calls < self.first + self.count:
            return y * float("nan")
        return y


def nan_from_step(num_classes: int = 10) -> nn.Module:
    """The misbehaving student."""
    return NaNFromStep(num_classes)
