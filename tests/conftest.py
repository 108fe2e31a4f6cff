"""Shared test setup: tests/ on sys.path (for fake_tensorrt), a private DARKLIGHT_CACHE, the gpu marker."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs CUDA (and TensorRT where named); skipped otherwise")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never write engines or exports into the user's ~/.cache."""
    monkeypatch.setenv("DARKLIGHT_CACHE", str(tmp_path_factory.getbasetemp() / "darklight_cache"))
