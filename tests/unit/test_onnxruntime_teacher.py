"""The ONNX Runtime teacher reads the batch's own memory and writes logits into preallocated buffers."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from darklight_dist.errors import TeacherError
from darklight_dist.teachers.onnxruntime import OnnxRuntimeTeacher
from teacher_testkit import aligned, export_tiny

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("ort") / "tiny.onnx")


def _reference(path, x: torch.Tensor) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"images": np.ascontiguousarray(x.numpy())})[0]


class SpyBinding:
    """Wraps an OrtIOBinding and records the pointers handed to it."""

    def __init__(self, inner) -> None:
        self.inner, self.inputs, self.outputs = inner, [], []

    def bind_input(self, name, device, device_id, dtype, shape, ptr):
        self.inputs.append((name, device, ptr, tuple(shape)))
        return self.inner.bind_input(name, device, device_id, dtype, shape, ptr)

    def bind_output(self, name, device, device_id, dtype, shape, ptr):
        self.outputs.append((name, device, ptr, tuple(shape)))
        return self.inner.bind_output(name, device, device_id, dtype, shape, ptr)

    def __getattr__(self, item):
        return getattr(self.inner, item)


@pytest.mark.parametrize("offset", [0, 192], ids=["aligned", "dali-like-offset-192"])
def test_reads_the_very_memory_of_the_batch(tiny_onnx, offset):
    teacher = OnnxRuntimeTeacher(tiny_onnx, device=CPU, num_classes=10)
    spy = SpyBinding(teacher._io)
    teacher._io = spy
    images = aligned((6, 3, 16, 16), offset_bytes=offset)
    logits = teacher(images)
    assert spy.inputs == [("images", "cpu", images.data_ptr(), (6, 3, 16, 16))]  # same pointer: no copy
    assert teacher.copies == 0
    assert spy.outputs[0][2] == logits.data_ptr()  # ORT wrote straight into the returned tensor
    np.testing.assert_allclose(logits.numpy(), _reference(tiny_onnx, images), rtol=1e-5, atol=1e-5)
    # and it really reads that memory at call time: change the pixels in place, the logits follow
    images.mul_(-1)
    np.testing.assert_allclose(teacher(images).numpy(), _reference(tiny_onnx, images), rtol=1e-5, atol=1e-5)


def test_channels_last_costs_one_counted_copy(tiny_onnx):
    teacher = OnnxRuntimeTeacher(tiny_onnx, device=CPU)
    x = aligned((4, 3, 16, 16), channels_last=True)
    assert not x.is_contiguous()
    out = teacher(x)
    assert teacher.copies == 1
    np.testing.assert_allclose(out.numpy(), _reference(tiny_onnx, x.contiguous()), rtol=1e-5, atol=1e-5)


def test_output_buffers_are_reused_and_survive_one_more_call(tiny_onnx):
    teacher = OnnxRuntimeTeacher(tiny_onnx, device=CPU)
    a, b, c = (aligned((8, 3, 16, 16), seed=s) for s in range(3))
    la = teacher(a)
    lb = teacher(b)
    expected_a = _reference(tiny_onnx, a)
    np.testing.assert_allclose(la.numpy(), expected_a, rtol=1e-5, atol=1e-5)  # still valid after the next call
    allocations = teacher._out.allocations
    for _ in range(4):
        teacher(c)
        small = teacher(c[:3])  # a smaller batch is a view, not a new buffer
    assert teacher._out.allocations == allocations == 2
    np.testing.assert_allclose(small.numpy(), _reference(tiny_onnx, c[:3]), rtol=1e-5, atol=1e-5)
    assert lb.shape == (8, 10)


def test_session_settings_are_explicit(tiny_onnx):
    teacher = OnnxRuntimeTeacher(tiny_onnx, device=CPU)
    assert teacher.session.get_providers() == ["CPUExecutionProvider"]
    assert teacher.info.extra["intra_op_num_threads"] == torch.get_num_threads()
    assert teacher.info.backend == "onnxruntime" and teacher.info.input_size == 16


def test_class_count_mismatch_is_a_clear_error(tiny_onnx):
    with pytest.raises(TeacherError, match="teacher has 10 classes, the data 7"):
        OnnxRuntimeTeacher(tiny_onnx, device=CPU, num_classes=7)


def test_wrong_image_size_is_a_clear_error(tiny_onnx):
    teacher = OnnxRuntimeTeacher(tiny_onnx, device=CPU)
    with pytest.raises(TeacherError, match="height 16"):
        teacher(torch.randn(2, 3, 32, 32))


def test_fp16_graph_counts_the_dtype_copy(tmp_path):
    path = export_tiny(tmp_path / "h.onnx", precision="fp16")
    teacher = OnnxRuntimeTeacher(path, device=CPU)
    x = aligned((3, 3, 16, 16))
    out = teacher(x)
    assert teacher.copies == 1 and out.dtype == torch.float32
    ref = _reference(path, x.half()).astype(np.float32)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-3, atol=1e-3)
    out_cl = teacher(x.contiguous(memory_format=torch.channels_last))  # dtype and layout: still one copy
    assert teacher.copies == 2
    np.testing.assert_allclose(out_cl.numpy(), ref, rtol=1e-3, atol=1e-3)


class StubOrt:
    def __init__(self, providers):
        self._providers = providers

    def get_available_providers(self):
        return self._providers


def test_cuda_providers_use_the_teachers_own_stream():
    """Provider selection only: the CUDA run itself is in tests/gpu (no GPU here)."""
    from darklight_dist.errors import ConfigError
    from darklight_dist.teachers.onnxruntime import choose_providers
    cuda = torch.device("cuda", 1)
    got = choose_providers(StubOrt(["CUDAExecutionProvider", "CPUExecutionProvider"]), cuda, 1234)
    assert got == [("CUDAExecutionProvider", {"device_id": "1", "user_compute_stream": "1234"}),
                   "CPUExecutionProvider"]
    assert choose_providers(StubOrt(["CPUExecutionProvider"]), CPU, 1234) == ["CPUExecutionProvider"]
    with pytest.raises(ConfigError, match="onnxruntime-gpu"):
        choose_providers(StubOrt(["CPUExecutionProvider"]), cuda, 1234)
