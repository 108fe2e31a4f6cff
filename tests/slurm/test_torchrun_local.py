"""Distributed launch without SLURM: two torchrun agents on loopback, and launch/run.sh.

No SLURM needed; the stand-in trainer (standin_train.py) stands for darklight_dist.train
until it lands (the real-trainer variant below is skipped until then).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.slurm.cluster import free_ports

pytestmark = pytest.mark.integration  # real torchrun processes; no SLURM needed

REPO = Path(__file__).resolve().parents[2]
STANDIN = "tests.slurm.standin_train"
DIGITS_RECIPE = REPO / "launch" / "recipes" / "digits.toml"


def local_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PET_"))}
    return dict(env, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **extra)


def two_agents(module: str, args: list[str], out: Path) -> list[subprocess.CompletedProcess]:
    """Start two torchrun agents (``--nnodes=2 --nproc_per_node=1``) that meet through a
    c10d rendezvous on 127.0.0.1, as two machines would; wait for both."""
    endpoint = f"127.0.0.1:{free_ports(1)[0]}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
           "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", "--rdzv-id=loopback",
           "-m", module, "--output-dir", str(out), *args]
    agents = [subprocess.Popen(cmd, env=local_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    results = []
    try:
        for a in agents:
            stdout, _ = a.communicate(timeout=120)
            results.append(subprocess.CompletedProcess(cmd, a.returncode, stdout))
    finally:
        for a in agents:  # on timeout or error: by PID, never by name
            if a.poll() is None:
                a.kill()
                a.wait()
    return results


def test_two_torchrun_agents_on_loopback_train_together(tmp_path):
    """Two agents, one rendezvous: world size 2, distinct node ranks, disjoint shards."""
    out = tmp_path / "run"
    results = two_agents(STANDIN, ["--max-steps", "3", "--step-seconds", "0.05"], out)
    text = "\n".join(r.stdout for r in results)
    assert [r.returncode for r in results] == [0, 0], text

    ranks = re.findall(r"\[standin\] rank=(\d) world_size=(\d) node=\S+ group_rank=(\d)", text)
    assert sorted(ranks) == [("0", "2", "0"), ("1", "2", "1")], text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 3

    shards = [json.loads((out / f"shard-rank{r}.json").read_text())["indices"] for r in (0, 1)]
    assert shards[0] and shards[1] and not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(64))


def test_run_sh_shows_only_rank0_by_default(tmp_path):
    """launch/run.sh: NGPU workers on one machine; only local rank 0 reaches the console."""
    out = tmp_path / "run"
    cmd = ["bash", str(REPO / "launch" / "run.sh"), "--output-dir", str(out), "--max-steps", "2",
           "--step-seconds", "0.05"]
    env = local_env(NGPU="2", PYTHON=sys.executable, DARKLIGHT_TRAIN_MODULE=STANDIN)
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    # Rank 1 ran (world size 2, and it wrote its shard) but its output was filtered out.
    assert re.findall(r"\[standin\] rank=(\d) world_size=2", res.stdout) == ["0"], res.stdout
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2
    assert (out / "shard-rank1.json").exists()


@pytest.mark.skipif(importlib.util.find_spec("darklight_dist.train") is None
                    or not DIGITS_RECIPE.exists(),
                    reason="darklight_dist.train (or launch/recipes/digits.toml) not there yet")
def test_two_agents_real_trainer_read_disjoint_shards(tmp_path):
    """Acceptance: the real trainer, two agents on loopback, one epoch of the digits data:
    world size 2, one rank per agent, and the two ranks' samples are disjoint and together
    cover the epoch (DistributedSampler-style even split)."""
    out = tmp_path / "run"
    steps = 23  # one epoch: 1437 digits -> 718 per rank -> 23 batches of 32
    results = two_agents("tests.slurm.record_indices",
                         ["--config", str(DIGITS_RECIPE), "--max-steps", str(steps), "--kd", "none",
                          "--device", "cpu", "--seed", "0", "--eval-every-epochs", "1000"], out)
    assert [r.returncode for r in results] == [0, 0], "\n".join(r.stdout[-3000:] for r in results)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == steps

    records = [json.loads((out / f"indices_rank{r}.json").read_text()) for r in (0, 1)]
    assert sorted(r["node_rank"] for r in records) == [0, 1]  # one rank from each agent
    seen = [[i for batch in r["indices"] for i in batch] for r in records]
    assert all(len(s) == len(set(s)) == 718 for s in seen), [len(s) for s in seen]
    assert not set(seen[0]) & set(seen[1])
    assert len(set(seen[0]) | set(seen[1])) == 1436
