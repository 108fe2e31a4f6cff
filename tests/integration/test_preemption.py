"""SIGTERM / SIGUSR1 (SLURM's warnings before preemption or the time limit): finish the step, checkpoint,
write summary.json, exit 75; resuming finishes the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from darklight_dist.preemption import StopRequest
from darklight_dist.train import EXIT_REQUEUE
from tests.conftest import REPO, run_module

TOTAL = 10 * 6  # 10 epochs of 6 steps: long enough to be signalled mid-run


def argv(data: Path, out: Path) -> list[str]:
    return ["-m", "darklight_dist.train", "--data-path", str(data), "--model", "tiny-mlp", "--kd", "none",
            "--image-size", "16", "--val-resize-size", "16", "-b", "4", "--epochs", "10", "-j", "1",
            "--output-dir", str(out), "--seed", "4", "--progress", "false", "--log-every-steps", "1",
            "--eval-every-epochs", "1000", "--ckpt-every-steps", "100000"]


def logged_steps(out: Path) -> list[int]:
    p = out / "log.jsonl"
    lines = p.read_text().splitlines() if p.exists() else []
    return [json.loads(ln)["step"] for ln in lines[:-1] if '"train"' in ln]  # the last line may be partial


@pytest.mark.integration
def test_sigterm_checkpoints_within_a_step_exits_75_and_resumes(image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    # its own session: the signal goes to the whole process group, loader workers included, as SLURM does
    proc = subprocess.Popen([sys.executable, *argv(image_folder, out)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not logged_steps(out) or max(logged_steps(out)) < 5:
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be signalled"
        time.sleep(0.02)
    seen = max(logged_steps(out))
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    waited = time.monotonic() - t0
    assert proc.returncode == EXIT_REQUEUE == 75, stderr[-3000:]
    assert "Traceback" not in stderr

    latest = (out / "checkpoints" / "LATEST").read_text().strip()
    step = int(latest.removeprefix("step_"))
    summary = json.loads((out / "summary.json").read_text())
    noticed = summary["stop_signal"]["noticed_at_step"]
    assert summary["stop_signal"]["name"] == "SIGTERM"
    # the step running when the signal came finishes; one process stops right there (no agreement needed)
    assert seen <= noticed == step < TOTAL, (seen, noticed, step)
    assert max(logged_steps(out) + [step]) == step  # no step after the checkpoint
    assert summary["stop_reason"] == "signal" and summary["steps"] == step and summary["interruptions"] == 1
    assert not (out / "student.pt").exists()
    print(f"signal at step>={seen}, checkpoint step {step}, exit after {waited:.2f}s")
    assert waited < 30, waited

    r = run_module(argv(image_folder, out))
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "completed" and summary["steps"] == TOTAL
    assert summary["resumed_from"].endswith(latest) and summary["interruptions"] == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_stop_request_catches_slurm_signals_and_restores_handlers(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    stop = StopRequest()
    assert not stop.should_stop(1)
    os.kill(os.getpid(), sig)
    assert stop.should_stop(2) and stop.signal_name == sig.name and stop.noticed_at_step == 2
    stop.close()
    assert signal.getsignal(sig) is before


@pytest.mark.integration
def test_sigterm_to_a_whole_torchrun_job_checkpoints_every_rank(image_folder: Path, tmp_path: Path) -> None:
    """What SLURM does: the signal reaches torchrun, both ranks and their loader workers at once."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--max-restarts=1",
           *argv(image_folder, out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    while not logged_steps(out) or max(logged_steps(out)) < 4:
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be signalled"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=90)
    assert proc.returncode != 0  # torchrun re-raises the signal: its status is not the workers' 75
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "signal" and summary["world_size"] == 2 and summary["restarts"] == 0, stderr
    ckpt = out / "checkpoints" / (out / "checkpoints" / "LATEST").read_text().strip()
    assert ckpt.name == f"step_{summary['steps']:08d}"
    assert sorted(p.name for p in ckpt.iterdir()) == ["model.pt", "rank0.pt", "rank1.pt", "train_state.pt"]
