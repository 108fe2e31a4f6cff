"""DALI on the GPU: mixed decode, fp16 device output, zero-copy, parity, sharding, resume (skipped without CUDA).

Written from DALI 2.4's documented API; never run in the CPU-only development environment.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

dali = pytest.importorskip("nvidia.dali")

from darklight_dist.config import Config  # noqa: E402
from darklight_dist.data.dali import build_dali_loaders  # noqa: E402
from darklight_dist.data.layout import scan_image_folder  # noqa: E402

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from PIL import Image
    from sklearn.datasets import load_sample_images

    root = tmp_path_factory.mktemp("gpu_ds")
    rng = np.random.default_rng(0)
    for split, n in (("train", 48), ("val", 13)):
        for k in range(n):
            src = load_sample_images().images[k % 2]
            h, w = int(rng.integers(240, 420)), int(rng.integers(240, 600))
            y, x = int(rng.integers(0, 427 - h + 1)), int(rng.integers(0, 640 - w + 1))
            out = root / split / f"c{k % 3}"
            out.mkdir(parents=True, exist_ok=True)
            Image.fromarray(src[y:y + h, x:x + w]).save(out / f"{k}.jpg", quality=90)
    return root


def _loaders(root: Path, *, rank: int = 0, world: int = 1, decode: str = "auto", layout: str = "nhwc", batch: int = 4):
    cfg = Config()
    cfg.optim.batch_size, cfg.data.workers, cfg.data.dali_decode = batch, 2, decode
    cfg.data.image_size, cfg.data.val_resize_size, cfg.data.mean, cfg.data.std = 224, 256, MEAN, STD
    dev = torch.device("cuda", 0)
    return build_dali_loaders(cfg, rank=rank, world_size=world, local_rank=0, device=dev,
                              train_files=scan_image_folder(root / "train"), val_files=scan_image_folder(root / "val"),
                              layout=layout)


@pytest.mark.parametrize("decode", ["mixed", "cpu"])
def test_device_fp16_channels_last_output(photos, decode):
    train, val = _loaders(photos, decode=decode)
    assert train.spec.decode == decode and train.spec.gpu_output
    b = next(iter(train))
    assert b.images.is_cuda and b.images.dtype == torch.float16 and b.images.shape == (4, 3, 224, 224)
    assert b.images.is_contiguous(memory_format=torch.channels_last)
    assert b.labels.is_cuda and b.labels.dtype == torch.int64
    assert torch.isfinite(b.images).all()


def test_images_are_dali_memory_without_copy(photos, monkeypatch):
    train, _ = _loaders(photos, layout="nchw")
    captured = []
    real_run = train._pipe.run

    def spy():
        out = real_run()
        captured.append(out[0].as_tensor().data_ptr())
        return out

    monkeypatch.setattr(train._pipe, "run", spy)
    batches = list(train)
    assert [b.images.data_ptr() for b in batches] == captured[: len(batches)]


def test_val_matches_torchvision_on_gpu(photos):
    from PIL import Image
    from torchvision import transforms as T

    files = scan_image_folder(photos / "val")
    _, val = _loaders(photos, layout="nchw")
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
    for b in val:
        for j in range(b.valid):
            ref = tf(Image.open(files.root / files.files[int(b.indices[j])]).convert("RGB"))
            d = (b.images[j].float().cpu() - ref).abs() * torch.tensor(STD).view(3, 1, 1) * 255
            # nvJPEG's IDCT/upsampling and the fp16 output differ a little more than the CPU path
            assert d.mean() <= 1.5 and d.max() <= 12, (d.mean(), d.max())


def test_ranks_disjoint_on_gpu(photos):
    seen = []
    for rank in range(4):
        train, _ = _loaders(photos, rank=rank, world=4)
        seen += [i for b in train for i in b.indices.tolist()]
    assert len(seen) == len(set(seen)) == 48


def test_resume_on_gpu(photos):
    train, _ = _loaders(photos)
    it = iter(train)
    next(it)
    state = train.state_dict()
    expected = [next(it) for _ in range(2)]
    again, _ = _loaders(photos)
    again.load_state_dict(state)
    got = list(again)[:2]
    for e, g in zip(expected, got):
        assert torch.equal(e.indices.cpu(), g.indices.cpu())
        assert torch.allclose(e.images.float(), g.images.float(), atol=1e-2)
