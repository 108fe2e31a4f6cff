"""DDP under real torchrun (gloo): gradient averaging is right and ranks never diverge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def run_digest(out: Path, data: Path, nproc: int, batch: int) -> None:
    out.mkdir(parents=True)
    args = ["--data-path", str(data), "--model", "tiny-mlp", "--kd", "none", "--image-size", "16",
            "--val-resize-size", "16", "-b", str(batch), "--epochs", "2", "--lr", "0.2", "-j", "0",
            "--output-dir", str(out / "run"), "--seed", "3", "--progress", "false", "--log-every-steps", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(REPO / "tests/integration/scripts/ddp_digest.py"), str(out), *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]


def test_two_ranks_equal_one_rank_with_same_global_batch(image_folder: Path, tmp_path: Path) -> None:
    run_digest(tmp_path / "two", image_folder, nproc=2, batch=4)
    run_digest(tmp_path / "one", image_folder, nproc=1, batch=8)
    d0 = json.loads((tmp_path / "two/digests_rank0.json").read_text())
    d1 = json.loads((tmp_path / "two/digests_rank1.json").read_text())
    assert len(d0) == 6 and d0 == d1, "parameters differ between ranks after some step"
    w2 = torch.load(tmp_path / "two/weights_rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "one/weights_rank0.pt", weights_only=True)
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-5, atol=1e-6)
    s2 = json.loads((tmp_path / "two/run/summary.json").read_text())
    assert s2["world_size"] == 2 and s2["steps"] == 6 and s2["images_seen"] == 48
