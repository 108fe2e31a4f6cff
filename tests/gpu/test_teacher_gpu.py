"""The teacher assertions on the real stack: CUDA, TensorRT, onnxruntime-gpu.

Marked `gpu`; skipped without CUDA (and without TensorRT / the CUDA execution provider for
the tests that need them). None of these has run in this project's CI, which has no GPU:
they are the checks to run on the first GPU machine, written to mirror the fake-TRT tests.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from teacher_testkit import TinyNet, export_tiny

pytestmark = pytest.mark.gpu

CUDA = torch.cuda.is_available()
HAS_TRT = importlib.util.find_spec("tensorrt") is not None
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs CUDA")
needs_trt = pytest.mark.skipif(not (CUDA and HAS_TRT), reason="needs CUDA and TensorRT")


def _ort_cuda_available() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("gpu") / "tiny.onnx")


def _reference(onnx_path, x: torch.Tensor) -> torch.Tensor:
    from darklight_dist.teachers.onnxruntime import OnnxRuntimeTeacher
    return OnnxRuntimeTeacher(onnx_path, device=torch.device("cpu"))(x.float().cpu().contiguous()).clone()


def _dev() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device())


@needs_trt
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_tensorrt_matches_onnxruntime_and_caches(onnx_path, tmp_path, layout):
    from darklight_dist.teachers.tensorrt import build_tensorrt_teacher
    first = build_tensorrt_teacher(onnx_path, device=_dev(), max_batch=8, opt_batch=4, layout=layout,
                                   cache_dir=tmp_path)
    second = build_tensorrt_teacher(onnx_path, device=_dev(), max_batch=8, opt_batch=4, layout=layout,
                                    cache_dir=tmp_path)
    assert (first.info.extra["cache"], second.info.extra["cache"]) == ("built", "hit")
    x = torch.randn(5, 3, 16, 16, device=_dev())
    if layout == "nhwc":
        x = x.contiguous(memory_format=torch.channels_last)
    out = second(x)
    torch.cuda.synchronize()
    assert second.copies == 0  # fresh CUDA allocations are 512-byte aligned
    torch.testing.assert_close(out.cpu(), _reference(onnx_path, x), rtol=1e-3, atol=1e-3)


@needs_trt
def test_tensorrt_misaligned_and_oversized(onnx_path, tmp_path):
    from darklight_dist.errors import DarklightError
    from darklight_dist.teachers.tensorrt import build_tensorrt_teacher
    teacher = build_tensorrt_teacher(onnx_path, device=_dev(), max_batch=8, cache_dir=tmp_path)
    flat = torch.randn(4 * 3 * 16 * 16 + 48, device=_dev())
    x = flat[48:].view(4, 3, 16, 16)  # 192 bytes past an aligned block, like DALI's CPU buffers
    assert x.data_ptr() % 256 == 192
    out = teacher(x)
    torch.cuda.synchronize()
    assert teacher.copy_reasons["alignment"] == 1
    torch.testing.assert_close(out.cpu(), _reference(onnx_path, x), rtol=1e-3, atol=1e-3)
    with pytest.raises(DarklightError, match="profile max of 8"):
        teacher(torch.randn(9, 3, 16, 16, device=_dev()))


@needs_trt
def test_tensorrt_corrupted_plan_is_rebuilt(onnx_path, tmp_path):
    from darklight_dist.teachers.tensorrt import build_tensorrt_teacher
    t = build_tensorrt_teacher(onnx_path, device=_dev(), max_batch=4, cache_dir=tmp_path)
    plan = f"{t.info.extra['engine']}/plan.engine"
    data = bytearray(open(plan, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(plan, "wb").write(bytes(data))
    again = build_tensorrt_teacher(onnx_path, device=_dev(), max_batch=4, cache_dir=tmp_path)
    assert again.info.extra["cache"] == "built"


@needs_cuda
@pytest.mark.skipif(not _ort_cuda_available(), reason="needs onnxruntime-gpu")
def test_onnxruntime_cuda_reads_the_batch_in_place(onnx_path):
    from darklight_dist.teachers.onnxruntime import OnnxRuntimeTeacher
    teacher = OnnxRuntimeTeacher(onnx_path, device=_dev())
    assert teacher.session.get_providers()[0] == "CUDAExecutionProvider"
    x = torch.randn(6, 3, 16, 16, device=_dev())
    out = teacher(x)
    torch.cuda.synchronize()
    assert teacher.copies == 0
    torch.testing.assert_close(out.cpu(), _reference(onnx_path, x), rtol=1e-3, atol=1e-3)


@needs_cuda
def test_torch_cuda_graph_matches_eager():
    from darklight_dist.teachers.torch import TorchTeacher
    model = TinyNet()
    eager = TorchTeacher(TinyNet(), num_classes=10, device=_dev())
    graphed = TorchTeacher(model, num_classes=10, device=_dev(), cuda_graph=True)
    x = torch.randn(8, 3, 16, 16, device=_dev())
    first, second = graphed(x), graphed(x * 2)
    torch.testing.assert_close(first, eager(x), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(second, eager(x * 2), rtol=1e-4, atol=1e-4)
    assert graphed._graph is not None and graphed.copies == 2
    torch.testing.assert_close(graphed(x[:3]), eager(x[:3]), rtol=1e-4, atol=1e-4)  # other shape: eager
