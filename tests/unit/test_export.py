"""Export: torch -> ONNX with a dynamic batch, checked, and equal to torch under ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from darklight_dist.errors import TeacherError
from darklight_dist.export import main as export_main
from darklight_dist.models import build_model
from darklight_dist.teachers.export import export_onnx, onnx_files, onnx_sha256, read_signature


def _ort(path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["logits"], {"images": x})[0]


@pytest.mark.parametrize("spec,size", [("builtin:digits-teacher", 32), ("resnet18", 64)])
def test_export_matches_torch_at_another_batch_size(tmp_path, spec, size):
    torch.manual_seed(0)
    model = build_model(spec, 10).eval()
    with torch.no_grad():  # a trained-like scale: logits of order 1, not 1e-2
        model[-1].weight.mul_(50) if isinstance(model, torch.nn.Sequential) else model.fc.weight.mul_(50)
    report = export_onnx(model, tmp_path / "t.onnx", num_classes=10, image_size=size)
    sig = read_signature(report.path)
    assert (sig.input_name, sig.output_name, sig.precision) == ("images", "logits", "fp32")
    assert sig.input_shape == ("batch", 3, size, size) and sig.num_classes == 10
    assert report.top1_agreement == 1.0 and report.max_abs_diff <= report.tolerance
    x = torch.randn(5, 3, size, size)  # not the export's example batch of 2: the batch is dynamic
    with torch.no_grad():
        ref = model(x).numpy()
    got = _ort(report.path, x.numpy())
    assert got.shape == (5, 10)
    assert np.abs(got - ref).max() <= 1e-4 + 1e-4 * np.abs(ref).max()
    assert (got.argmax(1) == ref.argmax(1)).all()


def test_fp16_export_parses_and_runs(tmp_path):
    report = export_onnx("builtin:digits-teacher", tmp_path / "h.onnx", num_classes=10, image_size=32,
                         precision="fp16")
    onnx.checker.check_model(str(report.path), full_check=True)
    sig = read_signature(report.path)
    assert sig.precision == "fp16"
    out = _ort(report.path, np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float16))
    assert out.dtype == np.float16 and out.shape == (3, 10) and np.isfinite(out).all()


def test_external_data_is_part_of_the_hash(tmp_path):
    from teacher_testkit import export_tiny
    path = export_tiny(tmp_path / "one.onnx")
    model = onnx.load(str(path))
    ext = tmp_path / "ext.onnx"
    onnx.save_model(model, str(ext), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.onnx.data", size_threshold=0)
    assert [p.name for p in onnx_files(ext)] == ["ext.onnx", "ext.onnx.data"]
    before = onnx_sha256(ext)
    data = bytearray((tmp_path / "ext.onnx.data").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "ext.onnx.data").write_bytes(bytes(data))
    assert onnx_sha256(ext) != before  # same .onnx bytes, other weights: another teacher
    (tmp_path / "ext.onnx.data").unlink()
    with pytest.raises(TeacherError, match="external data"):
        onnx_sha256(ext)


def test_not_an_onnx_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07this is not protobuf" * 10)
    with pytest.raises(TeacherError, match="bad.onnx.*does not parse"):
        read_signature(bad)


def test_cli_bad_input_exits_2_without_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        export_main(["--model", "no-such-model", "--num-classes", "10", "--image-size", "32",
                     "--out", str(tmp_path / "x.onnx")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("darklight_dist: error: unknown model 'no-such-model'") and "Traceback" not in err


def test_cli_exports_with_weights(tmp_path, capsys):
    model = build_model("builtin:digits-cnn", 10)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    assert export_main(["--model", "builtin:digits-cnn", "--weights", str(tmp_path / "w.pt"), "--num-classes", "10",
                        "--image-size", "32", "--out", str(tmp_path / "s.onnx"), "--exporter", "legacy"]) == 0
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    assert np.abs(_ort(tmp_path / "s.onnx", x.numpy()) - ref).max() < 1e-4
    assert '"top1_agreement": 1.0' in capsys.readouterr().out
