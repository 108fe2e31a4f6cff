"""Shared fixtures: small real JPEG folders on disk, a private cache, and a torchrun helper.

tests/ itself is put on sys.path so tests can import `fake_tensorrt` and `teacher_testkit`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session writes builtin datasets and engines to its own cache."""
    cache = Path(os.environ.get("DARKLIGHT_TEST_CACHE") or tmp_path_factory.mktemp("cache"))
    os.environ["DARKLIGHT_CACHE"] = str(cache)
    return cache


def write_image_folder(root: Path, classes: int = 3, per_class: int = 8, side: int = 24, seed: int = 0,
                       splits: tuple[str, ...] = ("train", "val")) -> Path:
    """A real ImageFolder tree of JPEGs whose class is visible in the pixels (a colored stripe)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split in splits:
        for c in range(classes):
            d = root / split / f"class_{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                img = rng.integers(0, 60, (side, side, 3), dtype=np.uint8)
                img[:, :, c % 3] += 150
                img[c * side // classes : (c + 1) * side // classes] = 255
                Image.fromarray(img).save(d / f"{i:03d}.jpg", quality=90)
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """3 classes x 8 JPEGs in train/ and val/."""
    return write_image_folder(tmp_path / "data")


def run_module(args: list[str], *, nproc: int = 0, cwd: Path | None = None, timeout: int = 300,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m darklight_dist.train ARGS`, under torchrun --standalone when nproc > 0."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    if nproc:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    else:
        cmd = [sys.executable, *args]
    return subprocess.run(cmd, cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout)
