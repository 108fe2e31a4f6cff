"""Exact resume: a run SIGKILLed mid-epoch and resumed with --resume auto is bitwise the uninterrupted run.

The student (digits-cnn) has BatchNorm and dropout and the data is randomly cropped and flipped, so
a missed RNG, optimizer, scheduler or data-position state changes the weights. The data backend is a
parameter: every loader implementing the Loader protocol's state_dict() must pass.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch

from tests.conftest import run_module

pytestmark = pytest.mark.integration

STEPS_PER_EPOCH, EPOCHS, CKPT_EVERY, KILL_AT = 6, 2, 4, 9  # 24 images, -b 4, one rank: ckpt at 8 is mid-epoch 2


def argv(data: Path, out: Path, backend: str, workers: str) -> list[str]:
    return ["-m", "darklight_dist.train", "--data-path", str(data), "--data-backend", backend, "-j", workers,
            "--model", "digits-cnn", "--kd", "soft", "--teacher", "tiny-mlp", "--image-size", "16",
            "--val-resize-size", "16", "-b", "4", "--epochs", str(EPOCHS), "--lr", "0.05", "--seed", "1",
            "--deterministic", "--output-dir", str(out), "--progress", "false", "--log-every-steps", "1",
            "--ckpt-every-steps", str(CKPT_EVERY)]


def losses(out: Path) -> dict[int, float]:
    """Step -> logged loss; a step logged twice (before a kill and after the resume) keeps the last."""
    recs = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in recs if r["type"] == "train"}


def weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "student.pt", weights_only=True)


def assert_bitwise(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


@pytest.mark.parametrize("backend,workers", [("torchvision", "0"), ("dali", "1")])
def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(backend: str, workers: str, image_folder: Path,
                                                            tmp_path: Path) -> None:
    a, a2, b = tmp_path / "a", tmp_path / "a2", tmp_path / "b"
    for out in (a, a2):
        r = run_module(argv(image_folder, out, backend, workers))
        assert r.returncode == 0, r.stderr[-3000:]
    assert_bitwise(weights(a), weights(a2))  # deterministic to begin with, or the comparison below means nothing
    assert losses(a) == losses(a2)

    r = run_module(argv(image_folder, b, backend, workers), env={"DARKLIGHT_FAULT": f"point=step:{KILL_AT}"})
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    assert not (b / "student.pt").exists() and max(losses(b)) == KILL_AT - 1
    r = run_module(argv(image_folder, b, backend, workers))
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((b / "summary.json").read_text())
    resumed_at = KILL_AT - 1 - (KILL_AT - 1) % CKPT_EVERY
    assert summary["resumed_from"].endswith(f"step_{resumed_at:08d}") and resumed_at % STEPS_PER_EPOCH != 0
    assert summary["steps"] == EPOCHS * STEPS_PER_EPOCH

    assert_bitwise(weights(a), weights(b))
    la, lb = losses(a), losses(b)
    assert sorted(lb) == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    assert {s: lb[s] for s in lb if s >= KILL_AT} == {s: la[s] for s in la if s >= KILL_AT}  # exact floats
    assert lb == la
