"""The catalogue of bad inputs (README, Troubleshooting): each exits 2 with one clear message on rank 0,
no traceback, and leaves every file that was on disk before byte-identical."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from darklight_dist.models import build_model
from tests.conftest import REPO, run_module, write_image_folder


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


def case_corrupt_image(tmp: Path) -> tuple[list[str], str]:
    write_image_folder(tmp / "d")
    (tmp / "d/train/class_1/003.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    return base(str(tmp / "d"), tmp / "out"), "cannot decode image " + str(tmp / "d/train/class_1/003.jpg")


def case_output_dir_is_a_file(tmp: Path) -> tuple[list[str], str]:
    write_image_folder(tmp / "d")
    (tmp / "out").write_text("a file where the run folder should be\n")
    return base(str(tmp / "d"), tmp / "out"), f"--output-dir {tmp / 'out'} is a file, not a folder"


def case_recipe_unknown_key(tmp: Path) -> tuple[list[str], str]:
    write_image_folder(tmp / "d")
    (tmp / "r.toml").write_text("[optim]\nlrr = 0.1\n")
    return base(str(tmp / "d"), tmp / "out") + ["--config", str(tmp / "r.toml")], "unknown key 'lrr' in [optim]"


def case_unlabeled_with_kd_none(tmp: Path) -> tuple[list[str], str]:
    write_image_folder(tmp / "d")
    return base(str(tmp / "d"), tmp / "out") + ["--unlabeled"], "--unlabeled has no labels to train on"


def case_teacher_input_size(tmp: Path) -> tuple[list[str], str]:
    write_image_folder(tmp / "d")
    a = base(str(tmp / "d"), tmp / "out")
    a[:2] = [str(REPO / "tests/integration/scripts/fixed_size_teacher.py")]
    a[a.index("none")] = "soft"
    return a + ["--teacher", "tiny-mlp"], "the teacher takes 32x32 images but would get 16x16 (--image-size 16)"


def case_disk_full_while_saving(tmp: Path) -> dict[str, Any]:
    write_image_folder(tmp / "d")
    out = tmp / "out"

    def after() -> None:  # the first checkpoint is published and intact; the failed one left nothing
        ck = out / "checkpoints"
        assert (ck / "LATEST").read_text().strip() == "step_00000002"
        assert torch.load(ck / "step_00000002/train_state.pt", weights_only=True)["step"] == 2
        assert not list(ck.glob(".tmp-*")) and not (ck / "step_00000004").exists()

    return {"argv": base(str(tmp / "d"), out) + ["--ckpt-every-steps", "2"], "after": after,
            "needle": f"no space left on device while writing checkpoint {out}/checkpoints/.tmp-step_00000004",
            "env": {"DARKLIGHT_FAULT": "point=save:after_model,action=enospc,step=4"}}


def previous_run(tmp: Path) -> Path:
    """A finished run (tiny-mlp, teacher tiny-mlp with weights from a file) copied into tmp/out."""
    if not PREVIOUS:
        root = Path(tempfile.mkdtemp(prefix="darklight-prev-"))
        atexit.register(shutil.rmtree, root, True)
        write_image_folder(root / "d")
        for name, seed in (("t.pt", 0), ("t2.pt", 1)):
            torch.manual_seed(seed)
            torch.save(build_model("tiny-mlp", 3).state_dict(), root / name)
        r = run_module(teacher_args(root / "d", root / "out", root / "t.pt"))
        assert r.returncode == 0, r.stderr[-2000:]
        PREVIOUS.append(root)
    shutil.copytree(PREVIOUS[0], tmp, dirs_exist_ok=True)
    return tmp


PREVIOUS: list[Path] = []


def teacher_args(data: Path, out: Path, weights: Path, model: str = "tiny-mlp") -> list[str]:
    a = base(str(data), out) + ["--teacher", "tiny-mlp", "--teacher-weights", str(weights)]
    a[a.index("none")] = "soft"
    a[a.index("tiny-mlp")] = model
    return a


def case_checkpoint_of_another_model(tmp: Path) -> tuple[list[str], str]:
    previous_run(tmp)
    return teacher_args(tmp / "d", tmp / "out", tmp / "t.pt", "digits-cnn"), "holds another model (tiny-mlp)"


def case_checkpoint_of_another_teacher(tmp: Path) -> tuple[list[str], str]:
    previous_run(tmp)
    return teacher_args(tmp / "d", tmp / "out", tmp / "t2.pt"), "was made with teacher"


def case_checkpoint_with_pickled_code(tmp: Path) -> dict[str, Any]:
    previous_run(tmp)
    ck = tmp / "out/checkpoints"
    state = ck / (ck / "LATEST").read_text().strip() / "train_state.pt"
    marker = tmp / "pwned"
    state.write_bytes(subprocess.run(  # a pickle whose loading would run `touch MARKER`
        [sys.executable, "-c", "import io, os, sys, torch\nclass P:\n    def __reduce__(self):\n"
         "        return (os.system, ('touch ' + sys.argv[1],))\nb = io.BytesIO()\ntorch.save({'step': 1, 'x': P()}, b)"
         "\nsys.stdout.buffer.write(b.getvalue())", str(marker)], capture_output=True, check=True).stdout)

    def after() -> None:
        assert not marker.exists(), "the pickled code ran"

    return {"argv": teacher_args(tmp / "d", tmp / "out", tmp / "t.pt"), "after": after,
            "needle": f"refusing to load {state}: it is not a plain-tensor checkpoint"}


CASES = [case_missing_data_path, case_no_val, case_empty_class, case_unknown_model, case_teacher_class_mismatch,
         case_weights_not_state_dict, case_resume_nothing, case_corrupt_image, case_output_dir_is_a_file,
         case_recipe_unknown_key, case_unlabeled_with_kd_none, case_teacher_input_size, case_disk_full_while_saving,
         case_checkpoint_of_another_model, case_checkpoint_of_another_teacher, case_checkpoint_with_pickled_code]


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file below root."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def check_bad_input(r: subprocess.CompletedProcess, needle: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("darklight_dist: error:")]
    assert len(errors) == 1 and needle in errors[0], r.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input_exits_2_with_one_clear_message(case: Callable[[Path], Any], tmp_path: Path) -> None:
    spec = case(tmp_path)
    if isinstance(spec, tuple):
        spec = {"argv": spec[0], "needle": spec[1]}
    had_checkpoints = (tmp_path / "out" / "checkpoints").exists()
    before = snapshot(tmp_path)
    r = run_module(spec["argv"], env=spec.get("env"))
    check_bad_input(r, spec["needle"])
    after = snapshot(tmp_path)
    assert {k: after.get(k) for k in before} == before, "a file that was on disk before was changed or removed"
    if "after" in spec:
        spec["after"]()
    elif not had_checkpoints:
        assert not (tmp_path / "out" / "checkpoints").exists()


def test_bad_input_on_two_ranks_is_reported_once(tmp_path: Path) -> None:
    argv, needle = case_unknown_model(tmp_path)
    r = run_module(argv, nproc=2)
    # torchrun's agent prints its own ChildFailedError trace; no frame of ours may appear
    assert r.returncode != 0 and "darklight_dist/" not in r.stderr.replace(str(tmp_path), "")
    assert r.stderr.count("darklight_dist: error:") == 1 and needle in r.stderr


def as_nobody() -> list[str]:
    """Run as an unprivileged user: root reads and writes through any permission bits."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot be tested")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_unreadable_image_and_unwritable_output_dir() -> None:
    """Permission bits, as a user they apply to (the test drops root with setpriv when needed)."""
    root = Path(tempfile.mkdtemp(prefix="darklight-perm-"))
    try:
        root.chmod(0o755)
        write_image_folder(root / "d")
        for p in root.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        locked = root / "d/train/class_2/005.jpg"
        locked.chmod(0o000)
        for name, mode in (("readonly", 0o555), ("out", 0o777), ("cache", 0o777)):
            (root / name).mkdir()
            (root / name).chmod(mode)  # mkdir's mode is masked by the umask
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "DARKLIGHT_CACHE": str(root / "cache")}
        folder = root / "d/val/class_1"
        for out, needle in ((root / "readonly/run", f"--output-dir {root}/readonly/run is not writable"),
                            (root / "out/run", f"cannot read image {locked}: permission denied"),
                            (root / "out/run", f"cannot read folder {folder}: Permission denied")):
            if "folder" in needle:
                folder.chmod(0o000)
            cmd = [*as_nobody(), sys.executable, *base(str(root / "d"), out)]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=root)
            check_bad_input(r, needle)
        assert locked.stat().st_mode & 0o777 == 0 and not (root / "readonly/run").exists()
    finally:
        for p in root.rglob("*"):
            p.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def test_corrupt_image_in_one_ranks_shard_is_reported_by_that_rank(tmp_path: Path) -> None:
    """Only rank 1 reads the file, so only rank 1 can name it (rank 0 just sees its peer leave)."""
    from darklight_dist.data.torchvision import ShardSampler

    write_image_folder(tmp_path / "d")
    files = sorted(str(p.relative_to(tmp_path / "d/train")) for p in (tmp_path / "d/train").rglob("*.jpg"))
    seed = 0  # --seed's default
    first_of_rank1 = files[int(ShardSampler(len(files), 1, 2, seed, shuffle=True, even=True).indices()[0])]
    bad = tmp_path / "d/train" / first_of_rank1
    bad.write_bytes(b"\xff\xd8 truncated")
    # the torchvision loader: its ShardSampler says which rank reads the file (DALI shards differ)
    r = run_module(base(str(tmp_path / "d"), tmp_path / "out") + ["--data-backend", "torchvision"], nproc=2)
    assert r.returncode != 0
    errors = [ln for ln in r.stderr.splitlines() if "darklight_dist: error:" in ln]
    assert len(errors) == 1 and f"darklight_dist: error: [rank 1] cannot decode image {bad}" in errors[0], r.stderr
