"""The embedded demo dataset: scikit-learn's 1,797 handwritten digits, written once as JPEG class folders."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DataError

DIGITS_VERSION = "digits-v1"
DIGITS_SIDE = 32
"""The 8x8 originals are upscaled to this side so ordinary CNNs and crops make sense."""


def cache_root() -> Path:
    """$DARKLIGHT_CACHE, default ~/.cache/darklight_dist."""
    return Path(os.environ.get("DARKLIGHT_CACHE", Path.home() / ".cache" / "darklight_dist"))


def _write_digits(dest: Path) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    idx = np.arange(len(digits.target))
    train_idx, val_idx = train_test_split(idx, test_size=0.2, random_state=0, stratify=digits.target)
    for split, ids in (("train", train_idx), ("val", val_idx)):
        for i in ids:
            label = int(digits.target[i])
            img = (digits.images[i] * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
            pil = Image.fromarray(img, mode="L").resize((DIGITS_SIDE, DIGITS_SIDE), Image.BICUBIC).convert("RGB")
            out = dest / split / str(label)
            out.mkdir(parents=True, exist_ok=True)
            pil.save(out / f"{i:04d}.jpg", quality=95)


def materialize_digits() -> Path:
    """Write digits as train/ and val/ JPEG folders under the cache (once; safe under concurrent ranks)."""
    root = cache_root()
    final = root / DIGITS_VERSION
    if (final / "COMPLETE").exists():
        return final
    try:
        root.mkdir(parents=True, exist_ok=True)
        with open(root / f".{DIGITS_VERSION}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one writer; the others wait and then find it complete
            if not (final / "COMPLETE").exists():
                tmp = Path(tempfile.mkdtemp(prefix=f".{DIGITS_VERSION}-", dir=root))
                _write_digits(tmp)
                (tmp / "COMPLETE").write_text("1797 images, stratified 80/20 split, random_state=0\n")
                if final.exists():
                    shutil.rmtree(final)
                os.replace(tmp, final)
    except OSError as e:
        raise DataError(f"cannot write the builtin digits dataset under {root} ({e}). "
                        "Set DARKLIGHT_CACHE to a writable folder.") from None
    return final


BUILTIN_DATASETS = {"builtin:digits": materialize_digits}


def resolve_data_path(data_path: str) -> str:
    """Turn `builtin:NAME` into a real folder; other paths pass through."""
    if data_path.startswith("builtin:"):
        if data_path not in BUILTIN_DATASETS:
            raise DataError(f"unknown builtin dataset {data_path!r}; available: {', '.join(BUILTIN_DATASETS)}.")
        return str(BUILTIN_DATASETS[data_path]())
    return data_path
