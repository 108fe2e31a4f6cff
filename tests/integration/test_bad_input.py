"""Bad input: one clear paragraph on stderr, exit status 2, no traceback, nothing on disk damaged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from darklight_dist.models import build_model
from tests.conftest import run_module, write_image_folder


def base(data: str, out: Path) -> list[str]:
    return ["-m", "darklight_dist.train", "--data-path", data, "--model", "tiny-mlp", "--kd", "none",
            "--image-size", "16", "--val-resize-size", "16", "-b", "4", "--epochs", "1", "-j", "0",
            "--output-dir", str(out), "--progress", "false"]


def case_missing_data_path(tmp: Path) -> tuple[list[str], str]:
    a = base("x", tmp / "out")
    i = a.index("--data-path")
    return a[:i] + a[i + 2:], "--data-path is required"


def case_no_val(tmp: Path) -> tuple[list[str], str]:
    write_image_folder(tmp / "d", splits=("train",))
    return base(str(tmp / "d"), tmp / "out"), "has no val/ folder"


def case_empty_class(tmp: Path) -> tuple[list[str], str]:
    write_image_folder(tmp / "d")
    (tmp / "d/train/zebra").mkdir()
    return base(str(tmp / "d"), tmp / "out"), "zebra has no images"


def case_unknown_model(tmp: Path) -> tuple[list[str], str]:
    write_image_folder(tmp / "d")
    a = base(str(tmp / "d"), tmp / "out")
    a[a.index("tiny-mlp")] = "resnet9000"
    return a, "unknown model 'resnet9000'"


def case_teacher_class_mismatch(tmp: Path) -> tuple[list[str], str]:
    write_image_folder(tmp / "d", classes=3)
    torch.save(build_model("tiny-mlp", 10).state_dict(), tmp / "t10.pt")
    a = base(str(tmp / "d"), tmp / "out")
    a[a.index("none")] = "soft"
    return a + ["--teacher", "tiny-mlp", "--teacher-weights", str(tmp / "t10.pt")], "The data has 3 classes"


def case_weights_not_state_dict(tmp: Path) -> tuple[list[str], str]:
    write_image_folder(tmp / "d")
    torch.save([torch.zeros(3)], tmp / "list.pt")
    a = base(str(tmp / "d"), tmp / "out")
    a[a.index("none")] = "soft"
    return a + ["--teacher", "tiny-mlp", "--teacher-weights", str(tmp / "list.pt")], "not a state_dict"


def case_resume_nothing(tmp: Path) -> tuple[list[str], str]:
    write_image_folder(tmp / "d")
    a = base(str(tmp / "d"), tmp / "out")
    a[a.index("--resume") + 1 if "--resume" in a else len(a):] = []
    return a + ["--resume", str(tmp / "nowhere")], "no checkpoint there"


CASES = [case_missing_data_path, case_no_val, case_empty_class, case_unknown_model, case_teacher_class_mismatch,
         case_weights_not_state_dict, case_resume_nothing]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input_exits_2_with_one_clear_message(case, tmp_path: Path) -> None:
    argv, needle = case(tmp_path)
    r = run_module(argv)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("darklight_dist: error:")]
    assert len(errors) == 1 and needle in errors[0], r.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_bad_input_on_two_ranks_is_reported_once(tmp_path: Path) -> None:
    argv, needle = case_unknown_model(tmp_path)
    r = run_module(argv, nproc=2)
    # torchrun's agent prints its own ChildFailedError trace; no frame of ours may appear
    assert r.returncode != 0 and "darklight_dist/" not in r.stderr.replace(str(tmp_path), "")
    assert r.stderr.count("darklight_dist: error:") == 1 and needle in r.stderr
