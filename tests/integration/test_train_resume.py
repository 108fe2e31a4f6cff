"""A run stopped by --max-steps and continued with --resume auto carries on (step, LR, optimizer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import run_module

pytestmark = pytest.mark.integration


def args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["-m", "darklight_dist.train", "--data-path", str(data), "--model", "digits-cnn", "--kd", "soft",
            "--teacher", "tiny-mlp", "--image-size", "16", "--val-resize-size", "16", "-b", "4", "--epochs", "3",
            "--lr", "0.1", "--lr-warmup-epochs", "1", "-j", "0", "--output-dir", str(out), "--seed", "1",
            "--progress", "false", "--log-every-steps", "1", "--ckpt-every-steps", "2", *extra]


def records(out: Path) -> list[dict]:
    return [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]


def test_resume_auto_continues_where_max_steps_stopped(image_folder: Path, tmp_path: Path) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    r = run_module(args(image_folder, full), nproc=2)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_module(args(image_folder, part, "--max-steps", "5"), nproc=2)
    assert r.returncode == 0, r.stderr[-3000:]
    first = json.loads((part / "summary.json").read_text())
    assert first["steps"] == 5 and (part / "checkpoints/LATEST").read_text().strip() == "step_00000005"
    r = run_module(args(image_folder, part), nproc=2)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((part / "summary.json").read_text())
    assert summary["resumed_from"].endswith("step_00000005") and summary["steps"] == 9
    train = [x for x in records(part) if x["type"] == "train"]
    steps = [x["step"] for x in train]
    assert steps[:5] == [1, 2, 3, 4, 5] and steps[5:] == [6, 7, 8, 9], steps
    ref = {x["step"]: x for x in records(full) if x["type"] == "train"}
    for x in train[5:]:  # LR schedule and losses carry on exactly as in the uninterrupted run
        assert x["lr"] == pytest.approx(ref[x["step"]]["lr"], rel=1e-9)
        assert x["loss"] == pytest.approx(ref[x["step"]]["loss"], rel=1e-5)
    a = torch.load(full / "student.pt", weights_only=True)
    b = torch.load(part / "student.pt", weights_only=True)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
