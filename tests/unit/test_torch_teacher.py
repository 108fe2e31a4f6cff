"""The torch teacher: frozen, channels_last, CUDA-graph request ignored on CPU, BN state hashed."""

from __future__ import annotations

import logging

import torch

from darklight_dist.teachers.torch import TorchTeacher, build_torch_teacher
from teacher_testkit import TinyNet


def test_channels_last_teacher_matches_eager_without_copies():
    x = torch.randn(4, 3, 16, 16)
    eager = TorchTeacher(TinyNet(), num_classes=10, device=torch.device("cpu"))
    cl = TorchTeacher(TinyNet(), num_classes=10, device=torch.device("cpu"), channels_last=True)
    torch.testing.assert_close(cl(x.contiguous(memory_format=torch.channels_last)), eager(x), rtol=1e-5, atol=1e-5)
    assert cl.copies == 0 and cl.info.layouts[0] == "nhwc"
    assert not any(p.requires_grad for p in cl.model.parameters())


def test_cuda_graph_on_cpu_is_refused_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        t = TorchTeacher(TinyNet(), num_classes=10, device=torch.device("cpu"), cuda_graph=True)
    assert t.cuda_graph is False and t.info.extra["cuda_graph"] is False
    assert "needs CUDA" in caplog.text


def test_batchnorm_models_hash():
    t = build_torch_teacher("builtin:digits-teacher", None, num_classes=10, device=torch.device("cpu"))
    assert len(t.info.model_sha256) == 64  # 0-d num_batches_tracked buffers included
