"""A worker group restarted by torchrun continues from the latest checkpoint, whatever --resume said."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from darklight_dist.distributed import DistEnv
from darklight_dist.resume import resume_spec


def env(restarts: int) -> DistEnv:
    return DistEnv(0, 2, 0, 2, 0, restarts, 0, torch.device("cpu"), "gloo")


@pytest.mark.parametrize("requested", ["auto", "none", "/old/run/checkpoints/step_00000100"])
def test_first_attempt_keeps_the_request(requested: str) -> None:
    assert resume_spec(requested, env(0), Path("ckpt/step_00000200")) == requested


@pytest.mark.parametrize("requested", ["auto", "none", "/old/run/checkpoints/step_00000100"])
def test_restarted_group_resumes_the_latest(requested: str) -> None:
    assert resume_spec(requested, env(1), Path("ckpt/step_00000200")) == "auto"
    assert resume_spec(requested, env(1), None) == requested  # died before the first checkpoint
