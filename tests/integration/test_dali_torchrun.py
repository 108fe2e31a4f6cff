"""Real torchrun, 2 nodes x 2 ranks on localhost (c10d rendezvous, gloo): DALI shards are disjoint and cover."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nvidia.dali")
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_two_ranks_under_torchrun(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("val", 14)):
        for k in range(n):
            d = tmp_path / "data" / split / f"c{k % 3}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (24, 28, 3), dtype=np.uint8)).save(d / f"{k}.jpg")
    out, port = tmp_path / "ranks.json", _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = lambda node: [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=2",  # noqa: E731
                        f"--node-rank={node}", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
                        "--rdzv-id=dali-probe", str(REPO / "tests/integration/dali_rank_probe.py"),
                        str(tmp_path / "data"), str(out)]
    nodes = [subprocess.Popen(cmd(n), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for n in (0, 1)]
    logs = [p.communicate(timeout=240)[0] for p in nodes]
    assert all(p.returncode == 0 for p in nodes), "\n".join(logs)[-3000:]
    ranks = sorted(json.loads(out.read_text()), key=lambda r: r["rank"])
    assert [r["rank"] for r in ranks] == [0, 1, 2, 3] and sorted(r["local"] for r in ranks) == [0, 0, 1, 1]
    assert {r["steps"] for r in ranks} == {3} and {r["val_steps"] for r in ranks} == {1}
    train = [i for r in ranks for i in r["train"]]
    assert sorted(train) == list(range(40)), "10 per rank: disjoint, and together the whole train set"
    assert sorted(i for r in ranks for i in r["val"]) == list(range(14))
