"""`python -m darklight_dist.report`: a PNG with four panels from a run's log, and exit 2 on bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from darklight_dist import report

PH = ("data", "teacher", "student", "allreduce", "optimizer", "other")


def fake_run(d: Path, steps: int = 20) -> Path:
    d.mkdir(parents=True)
    lines = []
    for s in range(1, steps + 1):
        rec = {"type": "train", "step": s, "epoch": s // 10, "lr": 0.1, "loss": 2.0 / s, "kd": 1.0 / s, "ce": 1.5 / s,
               "images_per_s": 300 + s, "step_ms": 100.0, "host_rss_mb": 500.0}
        rec.update({f"{k}_ms": v for k, v in zip(PH, (10, 30, 50, 3, 5, 2))})
        rec.update({f"{k}_share": v / 100 for k, v in zip(PH, (10, 30, 50, 3, 5, 2))})
        lines.append(json.dumps(rec))
        if s % 10 == 0:
            lines.append(json.dumps({"type": "eval", "step": s, "top1": 50.0 + s, "top5": 90.0, "teacher_top1": 95.0,
                                     "agreement": 60.0, "kl": 0.5}))
    (d / "log.jsonl").write_text("\n".join(lines) + '\n{"type": "tra')  # a torn last line: the run is writing
    return d


def test_report_writes_a_png_with_four_panels(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    run = fake_run(tmp_path / "run")
    assert report.main([str(run)]) == 0
    png = run / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    train, evals, _ = report.read_run(run)
    assert len(train) == 20 and len(evals) == 2 and report.loss_keys(train) == ["loss", "ce", "kd"]


def test_report_needs_a_log(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert report.main([str(tmp_path)]) == 2
    assert "no log.jsonl" in capsys.readouterr().err


def test_report_says_how_to_get_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    run = fake_run(tmp_path / "run")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert report.main([str(run)]) == 2
    assert "pip install 'darklight-dist[plot]'" in capsys.readouterr().err
