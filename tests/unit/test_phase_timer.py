"""PhaseTimer bookkeeping and the memory sampler, without a training run."""

from __future__ import annotations

import time

import torch

from darklight_dist.memory import MemorySampler, process_tree, tree_memory_mb
from darklight_dist.metrics import PHASES, PhaseTimer


def test_phases_are_contiguous_and_the_gap_is_other() -> None:
    t = PhaseTimer(torch.device("cpu"))
    t0 = time.perf_counter()
    for _ in range(3):
        with t.phase("data"):
            time.sleep(0.01)
        with t.phase("student", tail="allreduce"):
            time.sleep(0.01)
            t.split()  # as the DDP hook does: the rest of the phase is the exposed all-reduce
            time.sleep(0.005)
        time.sleep(0.004)  # bookkeeping between steps
    with t.phase("data"):
        pass
    wall = (time.perf_counter() - t0) * 1e3
    ms = t.collect()
    assert set(PHASES) <= set(ms)
    assert abs(sum(ms[k] for k in PHASES) - wall) < 0.02 * wall
    assert ms["allreduce"] >= 15 * 0.9 and ms["other"] >= 12 * 0.9 and ms["teacher"] == 0.0


def test_excluded_blocks_belong_to_no_phase() -> None:
    t = PhaseTimer(torch.device("cpu"))
    with t.phase("data"):
        pass
    with t.excluded():
        time.sleep(0.05)
    with t.phase("data"):
        pass
    assert t.collect()["other"] < 10


def test_extras_are_reported_apart() -> None:
    t = PhaseTimer(torch.device("cpu"))
    t.add("teacher_overlapped", 0.0, 0.002)
    ms = t.collect()
    assert ms["teacher_overlapped"] == 2.0 and sum(ms[k] for k in PHASES) == 0.0


def test_memory_sampler_sees_a_child_process() -> None:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(200 * 2**20); time.sleep(3)"])
    try:
        deadline = time.time() + 10
        while child.pid not in process_tree() and time.time() < deadline:
            time.sleep(0.05)
        assert child.pid in process_tree()
        m = MemorySampler(interval=0.05).start()
        base = None
        while time.time() < deadline:
            rss, pss = tree_memory_mb()
            assert pss is not None
            base = base or rss
            if rss > 150:
                break
            time.sleep(0.05)
        peaks = m.stop()
        assert peaks["rss_mb"] > 150 + 10 and peaks["pss_mb"] <= peaks["rss_mb"] and peaks["samples"] >= 2
    finally:
        child.kill()
        child.wait()
