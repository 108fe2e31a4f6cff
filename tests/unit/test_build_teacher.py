"""build_teacher's backend choice and reason, its clear errors, and the start-up parity check."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from darklight_dist.config import Config
from darklight_dist.errors import ConfigError, TeacherError
from darklight_dist.teachers import build_teacher, check_parity, choose_backend, teacher_parity, teacher_top1
from darklight_dist.teachers.onnxruntime import OnnxRuntimeTeacher
from darklight_dist.teachers.tensorrt import TensorRTTeacher
from darklight_dist.teachers.torch import TorchTeacher
from fake_tensorrt import make_fake_tensorrt
from teacher_testkit import TinyNet, aligned, export_tiny

CPU = torch.device("cpu")


def _cfg(**teacher) -> Config:
    cfg = Config()
    cfg.data.image_size = 16
    cfg.optim.batch_size = 8
    for k, v in teacher.items():
        setattr(cfg.teacher, k, v)
    return cfg


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("sel") / "tiny.onnx")


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError


def test_auto_on_cpu_exports_a_torch_teacher_to_onnxruntime(no_tensorrt):
    teacher, why = build_teacher(_cfg(), TinyNet(), num_classes=10, device=CPU)
    assert isinstance(teacher, OnnxRuntimeTeacher)
    assert why.startswith("auto: the device is cpu") and "exported to" in why
    x = aligned((8, 3, 16, 16))
    result = teacher_parity(_cfg(), teacher, TinyNet(), x, 10, CPU)
    assert result["reference"] == "torch-fp32-eager" and result["top1_agreement"] == 1.0
    assert result["max_abs_diff"] < 1e-4 and result["ok"]
    assert teacher.reference_model is None  # the fp32 copy is dropped once checked


def test_auto_reuses_the_export(no_tensorrt):
    a, _ = build_teacher(_cfg(), TinyNet(), num_classes=10, device=CPU)
    b, _ = build_teacher(_cfg(), TinyNet(), num_classes=10, device=CPU)
    c, _ = build_teacher(_cfg(), TinyNet(seed=1), num_classes=10, device=CPU)
    assert a.info.extra["path"] == b.info.extra["path"] != c.info.extra["path"]


def test_auto_with_an_onnx_file(no_tensorrt, onnx_path):
    teacher, why = build_teacher(_cfg(), str(onnx_path), num_classes=10, device=CPU)
    assert isinstance(teacher, OnnxRuntimeTeacher) and "the teacher is an ONNX file" in why


def test_auto_does_not_pick_tensorrt_on_cpu_even_if_importable(monkeypatch, onnx_path):
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt(11))
    assert choose_backend("auto", str(onnx_path), CPU)[0] == "onnxruntime"
    assert choose_backend("auto", str(onnx_path), torch.device("cuda", 0))[0] == "tensorrt"


def test_tensorrt_requested_without_tensorrt_is_a_config_error(no_tensorrt, onnx_path):
    with pytest.raises(ConfigError, match="TensorRT is not importable"):
        build_teacher(_cfg(backend="tensorrt"), str(onnx_path), num_classes=10, device=CPU)


@pytest.mark.parametrize("major", [10, 11])
def test_tensorrt_requested_with_the_fake(monkeypatch, tmp_path, major):
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt(major))
    cfg = _cfg(backend="tensorrt", engine_cache=str(tmp_path))
    teacher, why = build_teacher(cfg, TinyNet(), num_classes=10, device=CPU)
    assert isinstance(teacher, TensorRTTeacher) and why.startswith("tensorrt requested")
    assert teacher.max_batch == 8  # the profile max defaults to the per-rank batch size
    result = teacher_parity(cfg, teacher, TinyNet(), aligned((8, 3, 16, 16)), 10, CPU)
    assert result["top1_agreement"] == 1.0 and result["max_abs_diff"] < 1e-4


def test_onnx_teacher_for_other_classes_is_refused(no_tensorrt, onnx_path):
    with pytest.raises(TeacherError, match="teacher has 10 classes, the data 7"):
        build_teacher(_cfg(), str(onnx_path), num_classes=7, device=CPU)


def test_onnx_that_does_not_parse_names_the_file(no_tensorrt, tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x12\x34 not an onnx model")
    with pytest.raises(TeacherError, match="broken.onnx"):
        build_teacher(_cfg(), str(bad), num_classes=10, device=CPU)


def test_torch_backend_refuses_onnx(onnx_path):
    with pytest.raises(ConfigError, match="ONNX file"):
        build_teacher(_cfg(backend="torch"), str(onnx_path), num_classes=10, device=CPU)


def test_torch_fp16_is_checked_against_fp32(no_tensorrt):
    cfg = _cfg(backend="torch", precision="bf16")
    teacher, why = build_teacher(cfg, TinyNet(), num_classes=10, device=CPU)
    assert isinstance(teacher, TorchTeacher) and why == "torch requested"
    result = teacher_parity(cfg, teacher, TinyNet(), aligned((16, 3, 16, 16)), 10, CPU)
    assert result["reference"] == "torch-fp32-eager"
    assert 0 < result["max_abs_diff"] < 1.0  # bf16 really differs, but only a little


class Negated(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return -self.inner(x)


def test_parity_failure_stops_with_a_clear_error(no_tensorrt):
    cfg = _cfg()
    teacher, _ = build_teacher(cfg, TinyNet(), num_classes=10, device=CPU)
    teacher.reference_model = Negated(TinyNet())  # a reference the teacher cannot agree with
    with pytest.raises(TeacherError, match=r"parity check failed: .* agrees .* on only \d"):
        teacher_parity(cfg, teacher, TinyNet(), aligned((16, 3, 16, 16)), 10, CPU)


def test_check_parity_numbers():
    got = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 2.0]])
    ref = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.5]])
    result = check_parity(lambda x: got, lambda x: ref, torch.zeros(4, 3, 1, 1))
    assert result == {"top1_agreement": 0.75, "max_abs_diff": 1.0, "n": 4}


def test_teacher_top1_counts_only_valid_samples():
    from darklight_dist.data.batch import Batch
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    batch = Batch(images=torch.zeros(3, 3, 1, 1), labels=torch.tensor([0, 0, 1]), valid=2)
    assert teacher_top1(lambda x: logits, [batch]) == 0.5
    assert teacher_top1(lambda x: logits, [(torch.zeros(3, 3, 1, 1), torch.tensor([0, 1, 0]))]) == 1.0


def test_demo_teacher_with_weights_runs_through_onnxruntime(no_tensorrt, tmp_path):
    """The demo's path: --teacher builtin:digits-teacher --teacher-weights FILE, 32 px, CPU."""
    from darklight_dist.models import build_model
    model = build_model("builtin:digits-teacher", 10)
    with torch.no_grad():
        model[-1].weight.mul_(50)  # trained-like logit scale, so the comparison has teeth
    torch.save(model.state_dict(), tmp_path / "teacher.pt")
    cfg = _cfg(weights=str(tmp_path / "teacher.pt"))
    cfg.data.image_size = 32
    teacher, why = build_teacher(cfg, "builtin:digits-teacher", num_classes=10, device=CPU)
    assert isinstance(teacher, OnnxRuntimeTeacher) and "exported to" in why
    x = aligned((16, 3, 32, 32), offset_bytes=192)
    result = teacher_parity(cfg, teacher, "builtin:digits-teacher", x, 10, CPU)
    assert result["top1_agreement"] == 1.0 and result["max_abs_diff"] < 1e-3
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), model.eval()(x), rtol=1e-4, atol=1e-4)
    assert teacher.copies == 0


def test_fingerprint_is_the_weights_whatever_the_backend(no_tensorrt, tmp_path, monkeypatch):
    """Resuming must not depend on the backend or on the exact bytes of a (re-)export."""
    torch.save(TinyNet().state_dict(), tmp_path / "w.pt")
    spec = "teacher_testkit:TinyNet"
    ort_teacher, _ = build_teacher(_cfg(weights=str(tmp_path / "w.pt")), spec, num_classes=10, device=CPU)
    torch_teacher, _ = build_teacher(_cfg(weights=str(tmp_path / "w.pt"), backend="torch"), spec, num_classes=10,
                                     device=CPU)
    assert isinstance(ort_teacher, OnnxRuntimeTeacher)
    assert ort_teacher.fingerprint() == torch_teacher.fingerprint()
    assert ort_teacher.info.extra["onnx_sha256"] != ort_teacher.info.model_sha256
    monkeypatch.setenv("DARKLIGHT_CACHE", str(tmp_path / "wiped"))  # a fresh export
    again, _ = build_teacher(_cfg(weights=str(tmp_path / "w.pt")), spec, num_classes=10, device=CPU)
    assert again.fingerprint() == ort_teacher.fingerprint()
