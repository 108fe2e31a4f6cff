"""The benchmarks' plumbing on CPU: gpu_check.sh's dry mode (arguments, sections, JSON) and step.py's output.

Benchmarks assert nothing about time; these tests only check that the scripts run and say what they did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}


def gpu_check(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "benchmarks/gpu_check.sh"), *args, "--work-dir", str(tmp)],
                          env=ENV, capture_output=True, text=True, timeout=120)


def test_gpu_check_dry_run_prints_json_and_skips_with_reasons(tmp_path: Path) -> None:
    r = gpu_check("--dry-run", "--sections", "env,teacher_tensorrt", "--budget-s", "90",
                  tmp=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["benchmark"] == "gpu_check" and out["dry_run"] is True
    secs = out["sections"]
    assert list(secs) == ["env", "teacher_tensorrt"]
    assert secs["env"]["status"] == "ok" and "torch" in secs["env"]["result"]
    for name in ("teacher_tensorrt",):  # no TensorRT here: skipped, with the reason
        assert secs[name]["status"] in ("skipped", "ok"), secs[name]
        if secs[name]["status"] == "skipped":
            assert secs[name]["reason"]


def test_gpu_check_budget_and_bad_arguments(tmp_path: Path) -> None:
    r = gpu_check("--dry-run", "--budget-s", "1", tmp=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    secs = json.loads(r.stdout)["sections"]
    assert len(secs) == 7 and all(s["status"] == "skipped" and "budget" in s["reason"] for s in secs.values())
    r = gpu_check("--dry-run", "--sections", "env,warp_drive", tmp=tmp_path)
    assert r.returncode == 2 and "warp_drive" in r.stderr


def test_step_benchmark_reports_the_ratio(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(REPO / "benchmarks/step.py"), "--pair", "tiny", "--steps", "1",
                        "--warmup", "1", "--rounds", "1", "--device", "cpu", "--work-dir", str(tmp_path)],
                       env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["ratio_overlap_off"] > 0 and out["bound"]["images_per_s"] > 0
    full = out["full_overlap_off"]
    assert full["steps_timed"] == 1 and set(full["phases_ms"]) >= {"data", "teacher", "student", "other"}
