"""Checkpoints survive a crash at every stage of a save, refuse pickled code, and never hold a NaN."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from darklight_dist.checkpoint import LATEST, Checkpointer
from darklight_dist.distributed import DistEnv
from darklight_dist.errors import CheckpointError
from tests.conftest import run_module

STAGES = ["save:after_rank_files", "save:after_model", "save:before_rename", "save:before_latest",
          "save:before_prune"]
PUBLISHED = {"save:before_prune"}  # LATEST already names the new checkpoint at this stage

ENV = DistEnv(rank=0, world_size=1, local_rank=0, local_world_size=1, node_rank=0, restart_count=0, requeue_count=0,
              device=torch.device("cpu"), backend=None)


def save(ck: Checkpointer, step: int) -> None:
    """A checkpoint whose every file says which step wrote it."""
    ck.save(step, {"step": step, "world_size": 1}, {"w": torch.full((3,), float(step))},
            {"rng": {"step": step}})


def loaded_step(out: Path) -> int:
    """Resume as --resume auto would and return the step the checkpoint's files hold (all must agree)."""
    ck = Checkpointer(out, ENV, every_steps=None, keep=2)
    shared, model, rank = ck.load(ck.find("auto"))
    assert float(model["w"][0]) == shared["step"] == rank["rng"]["step"]
    return shared["step"]


@pytest.mark.parametrize("stage", STAGES)
def test_kill_during_save_leaves_a_loadable_latest(stage: str, tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, ENV, every_steps=None, keep=2)
    save(ck, 2)
    pid = os.fork()
    if pid == 0:  # the child saves step 4 and is SIGKILLed at `stage`
        os.environ["DARKLIGHT_FAULT"] = f"point={stage}"
        try:
            save(ck, 4)
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    assert loaded_step(tmp_path) == (4 if stage in PUBLISHED else 2)
    save(ck, 6)  # the next save clears the debris and publishes normally
    assert loaded_step(tmp_path) == 6
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*"))[-1] == "step_00000006"


def test_resave_of_the_latest_step_never_unpublishes_it(tmp_path: Path) -> None:
    """After resuming an earlier checkpoint, saving a step that exists gets a new name; LATEST stays valid."""
    ck = Checkpointer(tmp_path, ENV, every_steps=None, keep=1)
    save(ck, 4)
    save(ck, 4)
    assert (tmp_path / "checkpoints" / LATEST).read_text().strip() == "step_00000004-r1"
    assert [p.name for p in (tmp_path / "checkpoints").glob("step_*")] == ["step_00000004-r1"]
    save(ck, 2)  # a run resumed from step 2 of another branch: the later checkpoint is stale, removed
    assert [p.name for p in (tmp_path / "checkpoints").glob("step_*")] == ["step_00000002"]
    assert loaded_step(tmp_path) == 2


class Payload:
    """Pickled code: unpickling it would run `touch MARKER`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_carrying_pickled_code_is_refused_and_never_run(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, ENV, every_steps=None, keep=2)
    save(ck, 2)
    marker = tmp_path / "pwned"
    state = ck.find("auto") / "train_state.pt"
    torch.save({"step": 2, "world_size": 1, "extra": Payload(marker)}, state)
    with pytest.raises(CheckpointError, match="refusing to load .*pickled code is never executed"):
        ck.load(ck.find("auto"))
    assert not marker.exists()


def short_run(data: Path, out: Path, *extra: str) -> list[str]:
    return ["-m", "darklight_dist.train", "--data-path", str(data), "--model", "tiny-mlp", "--kd", "none",
            "--image-size", "16", "--val-resize-size", "16", "-b", "4", "--epochs", "1", "-j", "0",
            "--output-dir", str(out), "--seed", "2", "--progress", "false", "--log-every-steps", "1",
            "--ckpt-every-steps", "2", *extra]


@pytest.mark.integration
def test_training_killed_inside_a_save_resumes(image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = run_module(short_run(image_folder, out), env={"DARKLIGHT_FAULT": "point=save:before_rename,step=4"})
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert (out / "checkpoints" / LATEST).read_text().strip() == "step_00000002"
    assert (out / "checkpoints" / ".tmp-step_00000004").is_dir()  # the debris of the killed save
    r = run_module(short_run(image_folder, out))
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"].endswith("step_00000002") and summary["steps"] == 6
    assert not list((out / "checkpoints").glob(".tmp-*"))


NAN_MODEL = "tests.integration.scripts.fault_models:nan_from_step"


@pytest.mark.integration
def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_good_checkpoint(image_folder: Path,
                                                                            tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = short_run(image_folder, out, "--log-every-steps", "10")
    argv[argv.index("tiny-mlp")] = NAN_MODEL
    r = run_module(argv, env={"DARKLIGHT_NAN_STEP": "3"})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "darklight_dist: error: the loss became NaN or infinite at step 3." in r.stderr
    assert (out / "checkpoints" / LATEST).read_text().strip() == "step_00000002"
    model = torch.load(out / "checkpoints/step_00000002/model.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in model.values())
    assert not (out / "summary.json").exists() and not (out / "student.pt").exists()


@pytest.mark.integration
def test_nonfinite_loss_skip_mode_skips_the_step(image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = short_run(image_folder, out, "--on-nonfinite", "skip")
    argv[argv.index("tiny-mlp")] = NAN_MODEL
    r = run_module(argv, env={"DARKLIGHT_NAN_STEP": "3", "DARKLIGHT_NAN_STEPS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "step 3: non-finite loss, step skipped" in r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped_steps"] == 1 and summary["steps"] == 6
    weights = torch.load(out / "student.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in weights.values())
