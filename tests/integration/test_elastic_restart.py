"""torchrun --max-restarts: a worker SIGKILLed mid-epoch; the restarted group resumes from the latest
checkpoint and no sample of the interrupted epoch is skipped or trained twice, beyond the steps
since that checkpoint. Then the same checkpoint is resumed on another world size (epoch boundary).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from darklight_dist.config import OptimConfig
from darklight_dist.optim import lr_factor
from tests.conftest import run_module

pytestmark = pytest.mark.integration

N_IMAGES, STEPS_PER_EPOCH, EPOCHS, CKPT_EVERY, KILL_AT = 24, 3, 3, 2, 5  # 2 ranks x -b 4


def argv(data: Path, out: Path) -> list[str]:
    return ["-m", "darklight_dist.train", "--data-path", str(data), "--model", "tiny-mlp", "--kd", "soft",
            "--teacher", "tiny-mlp", "--image-size", "16", "--val-resize-size", "16", "-b", "4", "--epochs",
            str(EPOCHS), "-j", "0", "--seed", "1", "--deterministic", "--output-dir", str(out), "--progress",
            "false", "--log-every-steps", "1", "--ckpt-every-steps", str(CKPT_EVERY), "--lr-warmup-epochs", "1"]


def read_samples(prefix: Path) -> list[tuple[int, int, int, int, list[int]]]:
    """(attempt, rank, step, epoch, indices) of every trained batch."""
    rows = []
    for rank in (0, 1):
        for line in Path(f"{prefix}.rank{rank}").read_text().splitlines():
            attempt, step, epoch, idx = line.split()
            rows.append((int(attempt), rank, int(step), int(epoch), [int(i) for i in idx.split(",")]))
    return rows


def test_worker_killed_mid_epoch_restarts_and_loses_no_sample(image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = run_module(["--max-restarts=1", *argv(image_folder, out)], nproc=2,
                   env={"DARKLIGHT_FAULT": f"point=step:{KILL_AT},rank=1,attempt=0",
                        "DARKLIGHT_LOG_SAMPLES": str(tmp_path / "samples")})
    assert r.returncode == 0, r.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["restarts"] == 1 and summary["stop_reason"] == "completed"
    assert summary["steps"] == EPOCHS * STEPS_PER_EPOCH
    last_ckpt = (KILL_AT - 1) // CKPT_EVERY * CKPT_EVERY
    assert summary["resumed_from"].endswith(f"step_{last_ckpt:08d}")

    rows = read_samples(tmp_path / "samples")
    first = {(rank, step): idx for attempt, rank, step, _, idx in rows if attempt == 0}
    second = {(rank, step): idx for attempt, rank, step, _, idx in rows if attempt == 1}
    # the first attempt reached the kill step; the restarted one began right after the checkpoint
    assert max(s for _, s in first) == KILL_AT and min(s for _, s in second) == last_ckpt + 1
    replayed = sorted({s for _, s in first} & {s for _, s in second})
    assert replayed == list(range(last_ckpt + 1, KILL_AT + 1))  # only the steps since the checkpoint...
    for key in first.keys() & second.keys():
        assert first[key] == second[key], key  # ...and those on exactly the same samples
    # the effective run (attempt 0 up to the checkpoint, then attempt 1): every epoch sees every image once
    per_epoch: dict[int, Counter] = defaultdict(Counter)
    for attempt, _, step, epoch, idx in rows:
        if (attempt == 0 and step <= last_ckpt) or attempt == 1:
            per_epoch[epoch].update(idx)
    assert sorted(per_epoch) == list(range(EPOCHS))
    for epoch, seen in per_epoch.items():
        assert seen == Counter(range(N_IMAGES)), (epoch, seen)

    # Same output, one rank: a 2-rank mid-epoch checkpoint resumes at its epoch boundary, with a warning
    mid = out / "checkpoints" / "step_00000008"  # epoch 2 done, 2 steps into epoch 3
    r = run_module([*argv(image_folder, out), "--resume", str(mid)])
    assert r.returncode == 0, r.stderr[-4000:]
    assert "written by 2 ranks, this run has 1" in r.stderr and "resumes at the start of epoch 2" in r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 1 and summary["steps"] == EPOCHS * 2 * STEPS_PER_EPOCH
    recs = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    one_rank = [x for x in recs if x["type"] == "train"][-EPOCHS * 2 * STEPS_PER_EPOCH // 3:]
    cfg = OptimConfig(epochs=EPOCHS, lr_warmup_epochs=1.0, lr=0.1)
    for x in one_rank:  # the LR schedule follows the one-rank step count, not the checkpoint's
        expect = 0.1 * lr_factor(x["step"], total_steps=EPOCHS * 6, steps_per_epoch=6, cfg=cfg)
        assert x["lr"] == pytest.approx(expect, rel=1e-9), x
