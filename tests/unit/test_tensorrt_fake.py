"""The TensorRT backend against a strict fake TensorRT 10 and 11 (host memory stands in for the GPU).

What this proves: the backend's parse/build/profile/cache logic and its binding of torch
memory (shapes, addresses, alignment, layout, stream). What it cannot prove: that a real
engine computes the same thing on a GPU; tests/gpu does that where a GPU exists.
"""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import pytest
import torch

from darklight_dist.errors import ConfigError, DarklightError, TeacherError
from darklight_dist.teachers.engine_cache import META, PLAN
from darklight_dist.teachers.onnxruntime import OnnxRuntimeTeacher
from darklight_dist.teachers.tensorrt import build_tensorrt_teacher
from darklight_dist.teachers.tensorrt_build import build_plan
from fake_tensorrt import make_fake_tensorrt
from teacher_testkit import aligned, export_tiny

CPU = torch.device("cpu")


@pytest.fixture(params=[10, 11], ids=["trt10", "trt11"])
def trt(request, monkeypatch):
    fake = make_fake_tensorrt(request.param)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    return fake


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("trt") / "tiny.onnx")


def _build(onnx_path, cache, **kw):
    kw = {"max_batch": 8, "opt_batch": 4, "num_classes": 10} | kw
    return build_tensorrt_teacher(onnx_path, device=CPU, cache_dir=cache, **kw)


def _ort(onnx_path, x):
    return OnnxRuntimeTeacher(onnx_path, device=CPU)(x).clone()


def test_outputs_equal_onnxruntime_with_zero_copy(trt, onnx_path, tmp_path):
    teacher = _build(onnx_path, tmp_path)
    x = aligned((5, 3, 16, 16))
    logits = teacher(x)
    torch.testing.assert_close(logits, _ort(onnx_path, x), rtol=0, atol=0)
    enq = teacher.context.enqueues[-1]
    assert enq["addresses"]["images"] == x.data_ptr()  # the engine read the batch in place
    assert enq["addresses"]["logits"] == logits.data_ptr()
    assert enq["shapes"]["images"] == (5, 3, 16, 16) and enq["stream"] != 0
    assert teacher.copies == 0 and trt.executions == 1


def test_built_once_then_loaded_from_cache(trt, onnx_path, tmp_path):
    first = _build(onnx_path, tmp_path)
    second = _build(onnx_path, tmp_path)
    assert (first.info.extra["cache"], second.info.extra["cache"]) == ("built", "hit")
    assert trt.builds == 1
    x = aligned((3, 3, 16, 16))
    torch.testing.assert_close(second(x), _ort(onnx_path, x), rtol=0, atol=0)


def test_corrupted_cached_plan_is_rebuilt(trt, onnx_path, tmp_path):
    teacher = _build(onnx_path, tmp_path)
    plan = teacher.info.extra["engine"] + "/" + PLAN
    data = bytearray(open(plan, "rb").read())
    data[len(data) // 3] ^= 0xFF
    open(plan, "wb").write(bytes(data))
    again = _build(onnx_path, tmp_path)
    assert again.info.extra["cache"] == "built" and trt.builds == 2
    x = aligned((2, 3, 16, 16))
    torch.testing.assert_close(again(x), _ort(onnx_path, x), rtol=0, atol=0)


def test_plan_from_another_tensorrt_that_fails_to_deserialize_is_rebuilt(trt, onnx_path, tmp_path, monkeypatch):
    teacher = _build(onnx_path, tmp_path)
    entry = teacher.info.extra["engine"]
    other = make_fake_tensorrt(21 - trt.major)  # 10 <-> 11
    monkeypatch.setitem(sys.modules, "tensorrt", other)
    foreign = _build(onnx_path, tmp_path / "other").info.extra["engine"] + "/" + PLAN
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    # a plan whose meta.json vouches for it (sha matches) but the runtime refuses: rebuilt, not trusted
    plan = open(foreign, "rb").read()
    meta = json.loads(open(f"{entry}/{META}").read())
    meta.update(plan_bytes=len(plan), plan_sha256=hashlib.sha256(plan).hexdigest())
    open(f"{entry}/{PLAN}", "wb").write(plan)
    open(f"{entry}/{META}", "w").write(json.dumps(meta))
    again = _build(onnx_path, tmp_path)
    assert again.info.extra["cache"] == "built" and trt.builds == 2


def test_changed_onnx_gets_a_new_key(trt, onnx_path, tmp_path):
    a = _build(onnx_path, tmp_path / "c")
    other = export_tiny(tmp_path / "other.onnx", seed=1)
    b = _build(other, tmp_path / "c")
    assert a.info.extra["engine"] != b.info.extra["engine"] and trt.builds == 2
    assert b.info.extra["cache"] == "built"


@pytest.mark.parametrize("offset", [64, 192])
def test_misaligned_input_is_staged_and_counted(trt, onnx_path, tmp_path, offset):
    teacher = _build(onnx_path, tmp_path)
    x = aligned((4, 3, 16, 16), offset_bytes=offset)
    logits = teacher(x)
    addr = teacher.context.enqueues[-1]["addresses"]["images"]
    assert addr != x.data_ptr() and addr % 256 == 0
    assert teacher.copies == 1 and teacher.copy_reasons["alignment"] == 1
    torch.testing.assert_close(logits, _ort(onnx_path, x), rtol=0, atol=0)
    teacher(x)
    assert teacher._staging.allocations == 1  # the staging buffer is persistent


def test_oversized_batch_is_refused_before_enqueue(trt, onnx_path, tmp_path):
    teacher = _build(onnx_path, tmp_path)
    with pytest.raises(DarklightError, match="batch of 9 images exceeds .* profile max of 8"):
        teacher(aligned((9, 3, 16, 16)))
    assert trt.executions == 0


def test_nchw_engine_converts_channels_last_once(trt, onnx_path, tmp_path):
    teacher = _build(onnx_path, tmp_path, layout="nchw")
    x = aligned((4, 3, 16, 16), channels_last=True)
    torch.testing.assert_close(teacher(x), _ort(onnx_path, x.contiguous()), rtol=0, atol=0)
    assert teacher.copy_reasons == {"alignment": 0, "layout": 1, "dtype": 0}


def test_hwc_engine_reads_channels_last_in_place(trt, onnx_path, tmp_path):
    teacher = _build(onnx_path, tmp_path, layout="nhwc")
    assert teacher.layout == "nhwc" and teacher.info.layouts == ("nhwc",)
    x = aligned((4, 3, 16, 16), channels_last=True)
    logits = teacher(x)
    assert teacher.copies == 0 and teacher.context.enqueues[-1]["addresses"]["images"] == x.data_ptr()
    torch.testing.assert_close(logits, _ort(onnx_path, x.contiguous()), rtol=0, atol=0)
    y = aligned((4, 3, 16, 16), seed=3)  # NCHW data for an HWC engine: one counted conversion
    torch.testing.assert_close(teacher(y), _ort(onnx_path, y), rtol=0, atol=0)
    assert teacher.copy_reasons["layout"] == 1


def test_fp16(trt, onnx_path, tmp_path):
    fp16_onnx = export_tiny(tmp_path / "h.onnx", precision="fp16")
    if trt.major >= 11:
        with pytest.raises(TeacherError, match="strongly typed"):
            _build(onnx_path, tmp_path, precision="fp16")  # an fp32 ONNX cannot become an fp16 engine
    else:
        t10 = _build(onnx_path, tmp_path, precision="fp16")  # TRT 10 lowers fp32 with a builder flag
        assert t10.info.precision == "fp16"
    teacher = _build(fp16_onnx, tmp_path, precision="fp16")
    assert teacher.in_dtype == torch.float16
    x = aligned((3, 3, 16, 16))
    out = teacher(x)
    assert teacher.copy_reasons["dtype"] == 1 and out.dtype == torch.float32
    torch.testing.assert_close(out, _ort(fp16_onnx, x), rtol=0, atol=0)


def test_parser_errors_are_reported(trt, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(TeacherError, match=r"parser rejects .*bad.onnx.*Failed to parse"):
        build_plan(trt, bad, precision="fp32", layout="nchw", min_batch=1, opt_batch=1, max_batch=1, image_size=16)


def test_cpu_needs_the_fake(onnx_path, tmp_path, monkeypatch):
    real_like = make_fake_tensorrt(10)
    monkeypatch.setattr(type(real_like), "_darklight_fake_host_memory", False)
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        build_tensorrt_teacher(onnx_path, device=CPU, max_batch=2, cache_dir=tmp_path, trt=real_like)


# --- the fake itself: it must refuse what TensorRT refuses, or the tests above prove nothing ---

def test_fake_refuses_what_tensorrt_refuses(trt, onnx_path, tmp_path):
    teacher = _build(onnx_path, tmp_path)
    ctx = teacher.context
    ok = aligned((2, 3, 16, 16))
    assert ctx.execute_async_v3(1) is False  # nothing set yet
    assert ctx.set_input_shape("images", (9, 3, 16, 16)) is False  # outside the profile
    assert ctx.set_input_shape("images", (2, 3, 32, 32)) is False  # static dims differ
    assert ctx.set_input_shape("nope", (2, 3, 16, 16)) is False
    assert ctx.set_input_shape("images", (2, 3, 16, 16)) is True
    assert ctx.set_tensor_address("images", ok.data_ptr() + 4) is False  # not 256-byte aligned
    assert ctx.set_tensor_address("nope", ok.data_ptr()) is False
    assert ctx.set_tensor_address("images", ok.data_ptr()) is True
    assert ctx.execute_async_v3(1) is False  # output address unset
    with pytest.raises(TypeError):
        ctx.set_tensor_address("images", ok)  # a tensor, not an int pointer
    assert ctx.execute_async_v3(0) is False  # the default stream
    assert any("default stream" in m for _, m in teacher._logger.messages)


def test_fake_11_lacks_removed_names(trt):
    logger = trt.Logger()
    builder = trt.Builder(logger)
    if trt.major >= 11:
        for get in (lambda: trt.BuilderFlag.FP16, lambda: trt.BuilderFlag.BF16,
                    lambda: trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH, lambda: builder.platform_has_fast_fp16):
            with pytest.raises(AttributeError):
                get()
        net = builder.create_network(0)
        assert not hasattr(trt.OnnxParser(net, logger), "supports_model")
    else:
        assert trt.BuilderFlag.FP16 is not None and builder.platform_has_fast_fp16
        assert trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH == 0


def test_fake_hwc_really_reads_nhwc_memory(trt, onnx_path, tmp_path):
    """Hand an HWC engine NCHW memory directly: the fake must produce different (wrong) logits."""
    teacher = _build(onnx_path, tmp_path, layout="nhwc")
    x = aligned((2, 3, 16, 16), seed=5)  # NCHW memory
    out = aligned((2, 10, 1, 1)).view(2, 10)
    ctx = teacher.context
    assert ctx.set_input_shape("images", (2, 3, 16, 16))
    assert ctx.set_tensor_address("images", x.data_ptr()) and ctx.set_tensor_address("logits", out.data_ptr())
    assert ctx.execute_async_v3(1)
    assert not np.allclose(out.numpy(), _ort(onnx_path, x).numpy(), atol=1e-3)


def test_engine_cli_build_then_info(trt, onnx_path, tmp_path, capsys):
    from darklight_dist.engine import main
    assert main(["build", "--onnx", str(onnx_path), "--max-batch", "4", "--device", "cpu",
                 "--cache", str(tmp_path)]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["cache"] == "built" and built["num_classes"] == 10
    assert main(["info", "--cache", str(tmp_path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [e["spec"]["max_batch"] for e in info["engines"]] == [4]
    assert info["engines"][0]["spec"]["trt_version"] == trt.__version__


def test_engine_cli_without_tensorrt_exits_2(onnx_path, tmp_path, monkeypatch, capsys):
    from darklight_dist.engine import main
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(SystemExit) as e:
        main(["build", "--onnx", str(onnx_path), "--max-batch", "4", "--cache", str(tmp_path)])
    assert e.value.code == 2 and "TensorRT is not importable" in capsys.readouterr().err
