"""Phase times cover the step: per log record they add up to the measured step time (wall between logs).

A real run on CPU, one process and two (gloo); the two-rank run also proves the DDP hook splits out the
exposed all-reduce and that summary.json carries every rank's peak host memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_module

pytestmark = pytest.mark.integration

PHASES = ("data", "teacher", "student", "allreduce", "optimizer", "other")


def args(data: Path, out: Path) -> list[str]:
    return ["-m", "darklight_dist.train", "--data-path", str(data), "--model", "digits-cnn", "--kd", "soft",
            "--teacher", "tiny-mlp", "--image-size", "16", "--val-resize-size", "16", "-b", "4", "--epochs", "2",
            "-j", "0", "--output-dir", str(out), "--progress", "false", "--log-every-steps", "2"]


def check_sums(out: Path) -> dict:
    recs = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["type"] == "train"]
    assert len(train) >= 3
    for r in train:
        total = sum(r[f"{k}_ms"] for k in PHASES)
        # within a few percent, plus 1 ms for the log call itself (it runs between two marks)
        assert abs(total - r["step_ms"]) <= 0.03 * r["step_ms"] + 1.0, (r["step"], total, r["step_ms"])
        assert abs(sum(r[f"{k}_share"] for k in PHASES) - 1.0) < 1e-6
        assert r["student_ms"] > 0 and r["teacher_ms"] > 0 and r["data_ms"] > 0 and r["images_per_s"] > 0
    summary = json.loads((out / "summary.json").read_text())
    ph = summary["phases"]
    assert set(ph["ms"]) == set(PHASES) and abs(sum(ph["share"].values()) - 1.0) < 1e-3
    return summary


def test_phases_add_up_to_the_step_one_process(image_folder: Path, tmp_path: Path) -> None:
    r = run_module(args(image_folder, tmp_path / "one"))
    assert r.returncode == 0, r.stderr[-3000:]
    s = check_sums(tmp_path / "one")
    assert s["phases"]["ms"]["allreduce"] == 0.0  # no DDP, no all-reduce
    assert len(s["peak_host_rss_mb_per_rank"]) == 1 and 50 < s["peak_host_rss_mb"] < 4000
    assert s["peak_host_pss_mb_per_rank"][0] <= s["peak_host_rss_mb_per_rank"][0]
    assert s["backends"]["overlap"] is False and "CPU" in s["backends"]["overlap_reason"]


def test_phases_add_up_and_every_rank_reports_memory_two_ranks(image_folder: Path, tmp_path: Path) -> None:
    r = run_module(args(image_folder, tmp_path / "two"), nproc=2)
    assert r.returncode == 0, r.stderr[-3000:]
    s = check_sums(tmp_path / "two")
    assert s["phases"]["ms"]["allreduce"] > 0  # the hook split the backward: the exposed gloo all-reduce
    rss = s["peak_host_rss_mb_per_rank"]
    assert len(rss) == 2 and all(50 < m < 4000 for m in rss) and s["peak_host_rss_mb"] == rss[0]
