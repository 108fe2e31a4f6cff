"""Several real processes race for one engine: exactly one builds, the others wait and load it.

Run against the fake TensorRT 10 and then 11 with the same processes (one start-up cost).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from darklight_dist.teachers.tensorrt import build_tensorrt_teacher
from fake_tensorrt import make_fake_tensorrt
from teacher_testkit import export_tiny

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("engine_race_worker.py")
PROCESSES = 3


def _wait(paths: list[Path], procs: list[subprocess.Popen], what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(p.exists() for p in paths):
        failed = [p for p in procs if p.poll() not in (None, 0)]
        assert not failed, failed[0].communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"workers did not {what}"
        time.sleep(0.05)


def test_one_builder_per_node(tmp_path, monkeypatch):
    onnx = export_tiny(tmp_path / "tiny.onnx")
    cache, build_log = tmp_path / "engines", tmp_path / "builds.log"
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                        "FAKE_TRT_BUILD_LOG": str(build_log), "FAKE_TRT_BUILD_SECONDS": "1.0",
                        "OMP_NUM_THREADS": "1"}
    names = [f"w{i}" for i in range(PROCESSES)]
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(onnx), str(cache), str(tmp_path), n], env=env,
                              stderr=subprocess.PIPE, text=True) for n in names]
    try:
        _wait([tmp_path / f"{n}.ready" for n in names], procs, "start")
        for major in (10, 11):
            (tmp_path / f"go{major}").touch()
            _wait([tmp_path / f"{n}.{major}.json" for n in names], procs, f"finish the TensorRT {major} race")
    finally:
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err[-3000:]
    builds = build_log.read_text().splitlines()
    for major in (10, 11):
        results = [json.loads((tmp_path / f"{n}.{major}.json").read_text()) for n in names]
        built_here = [b for b in builds if f" {major}." in b]
        assert len(built_here) == 1, builds  # build_serialized_network ran in exactly one process
        statuses = sorted(r["status"] for r in results)
        assert statuses.count("built") == 1 and set(statuses) <= {"built", "waited", "hit"}, statuses
        assert "waited" in statuses, statuses  # the race was real: someone found the lock held
        assert sum(r["builds_here"] for r in results) == 1
        assert len({r["engine"] for r in results}) == 1
        assert all(r["logits"] == results[0]["logits"] for r in results)
        # a later run on the node loads from the cache without building
        fake = make_fake_tensorrt(major)
        monkeypatch.setitem(sys.modules, "tensorrt", fake)
        late = build_tensorrt_teacher(onnx, device=torch.device("cpu"), max_batch=4, cache_dir=cache)
        assert late.info.extra["cache"] == "hit" and fake.builds == 0
