"""Offline decode check: decode every image with DALI's CPU decoder, report failures, write clean file lists.

DALI cannot skip a bad image during training (its pipeline dies), so bad files are found
here, once, in parallel over the cores, and training reads the clean lists.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from ..atomic import atomic_write

CHUNK = 64
"""Files decoded per DALI run; a failing chunk is retried file by file to name the culprit."""


@dataclass
class ScanResult:
    """Files that decoded, and (file, reason) for those that did not."""

    good: list[int] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)


class _Decoder:
    """A one-thread CPU DALI pipeline that decodes a batch of encoded files fed from Python."""

    def __init__(self) -> None:
        self._pipe = None

    def _build(self, batch_size: int):
        from nvidia.dali import fn, pipeline_def, types

        @pipeline_def(batch_size=batch_size, num_threads=1, device_id=None, prefetch_queue_depth=1)
        def pipe():
            enc = fn.external_source(name="enc", dtype=types.UINT8, ndim=1)
            return fn.decoders.image(enc, device="cpu", output_type=types.RGB)

        p = pipe()
        p.build()
        return p

    def decode(self, blobs: list) -> None:
        """Raise RuntimeError if any blob fails to decode."""
        import numpy as np

        if self._pipe is None or self._pipe.max_batch_size < len(blobs):
            self._pipe = self._build(max(len(blobs), CHUNK))
        try:
            self._pipe.feed_input("enc", [np.frombuffer(b, dtype=np.uint8) for b in blobs])
            self._pipe.run()
        except RuntimeError:
            self._pipe = None  # the pipeline is invalid after a decode error; build a fresh one next time
            raise


_DECODER: Optional[_Decoder] = None


def _check_chunk(chunk: list[tuple[int, str]]) -> ScanResult:
    global _DECODER
    if _DECODER is None:
        _DECODER = _Decoder()
    res = ScanResult()
    blobs, ok = [], []
    for i, path in chunk:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            res.bad.append((i, f"unreadable: {e.strerror}"))
            continue
        if not data:
            res.bad.append((i, "empty file"))
            continue
        blobs.append(data)
        ok.append(i)
    if not blobs:
        return res
    try:
        _DECODER.decode(blobs)
        res.good += ok
        return res
    except RuntimeError:
        pass
    for i, data in zip(ok, blobs):  # rare path: find which file(s) of the chunk fail
        try:
            _DECODER.decode([data])
            res.good.append(i)
        except RuntimeError as e:
            res.bad.append((i, _reason(str(e))))
    return res


def _reason(msg: str) -> str:
    if "Failed to decode sample" in msg:
        return "corrupt or truncated image (the decoder stopped)"
    if "nvImageCodec failure" in msg:
        return "not a decodable image (unknown or unsupported format)"
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip() and "no longer valid" not in ln]
    return lines[-1] if lines else "cannot decode"


def _progress_printer(total: int, label: str) -> Callable[[int], None]:
    done, last = [0], [0.0]
    tty = sys.stderr.isatty()

    def update(n: int) -> None:
        done[0] += n
        now = time.monotonic()
        if done[0] == total or now - last[0] > (0.2 if tty else 10.0):
            last[0] = now
            end = "\n" if done[0] == total or not tty else ""
            sys.stderr.write(f"\r{label}: {done[0]}/{total} ({100.0 * done[0] / max(total, 1):.0f}%)" + end)
            sys.stderr.flush()

    return update


def decode_check(paths: list[str], workers: int = 0, label: str = "scan",
                 progress: bool = True) -> ScanResult:
    """Decode every file (process pool, one DALI pipeline per process); results keep the input order."""
    workers = workers or os.cpu_count() or 1
    pairs = list(enumerate(paths))
    chunks = [pairs[s:s + CHUNK] for s in range(0, len(pairs), CHUNK)]
    update = _progress_printer(len(paths), label) if progress else (lambda n: None)
    result = ScanResult()
    results: Iterable[ScanResult]
    if workers == 1 or len(chunks) <= 1:
        results = map(_check_chunk, chunks)
        for r in results:
            _merge(result, r, update)
    else:
        # spawn: DALI's threads and a forked parent do not mix
        with mp.get_context("spawn").Pool(min(workers, len(chunks))) as pool:
            for r in pool.imap_unordered(_check_chunk, chunks):
                _merge(result, r, update)
    result.good.sort()
    result.bad.sort()
    return result


def _merge(into: ScanResult, r: ScanResult, update: Callable[[int], None]) -> None:
    into.good += r.good
    into.bad += r.bad
    update(len(r.good) + len(r.bad))


def write_list(path: Path, rel_paths: list[str], labels: list[int]) -> None:
    """Write 'relative/path label' lines (the format --train-list/--val-list read)."""
    bad = [p for p in rel_paths if "\n" in p]
    if bad:
        raise ValueError(f"file name with a newline cannot go in a list: {bad[0]!r}")
    atomic_write(path, "".join(f"{p} {lbl}\n" for p, lbl in zip(rel_paths, labels)))
