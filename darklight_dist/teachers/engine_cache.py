"""TensorRT plan cache: the key, one builder per node (file lock), atomic publish, verified loads.

Layout of a cache folder:

    <root>/<key>/plan.engine      the serialized plan
    <root>/<key>/meta.json        key fields + sha256 and size of the plan (written last: the commit mark)
    <root>/<key>.lock             fcntl lock held by the one process that builds
    <root>/timing-<trt>-<gpu>.cache   TensorRT timing cache, shared by every key of that TRT + GPU

A plan is loaded only if meta.json matches the expected key fields and the plan bytes hash
to the sha256 it records; otherwise, or if deserializing fails, it is rebuilt.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ..atomic import atomic_write
from ..errors import TeacherError

log = logging.getLogger(__name__)

PLAN = "plan.engine"
META = "meta.json"
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """$DARKLIGHT_CACHE/engines, with DARKLIGHT_CACHE defaulting to ~/.cache/darklight_dist."""
    root = os.environ.get("DARKLIGHT_CACHE") or str(Path.home() / ".cache" / "darklight_dist")
    return Path(root) / "engines"


@dataclass(frozen=True)
class EngineSpec:
    """Everything that makes two plans different: the cache key is a hash of exactly this."""

    onnx_sha256: str
    """sha256 of the ONNX bytes and its external data."""
    trt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    layout: str
    """Input memory layout the engine reads: "nchw" (LINEAR) or "nhwc" (HWC)."""
    min_batch: int
    opt_batch: int
    max_batch: int
    image_size: int

    def key(self) -> str:
        """sha256 of the fields in a canonical JSON form (first 32 hex digits: a folder name)."""
        blob = json.dumps(asdict(self) | {"format": FORMAT_VERSION}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:32]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "unknown"


@contextmanager
def file_lock(path: Path, *, timeout_s: float = 3600.0, poll_s: float = 0.1) -> Iterator[bool]:
    """Hold an exclusive fcntl lock on `path`; yields True if another process held it first (we waited).

    fcntl locks are released by the kernel when the holder dies, so a crashed builder never
    leaves the node stuck. They work across processes on one node (the unit that shares a
    cache folder on local disk); on NFS they are only as good as the server's lock manager.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    waited = False
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    log.info("waiting for another process to finish building %s", path.stem)
                waited = True
                if time.monotonic() > deadline:
                    raise TeacherError(f"waited {timeout_s:.0f}s for the engine build lock {path}; another "
                                       "process holds it. Is a build hung? Remove nothing: kill that process.")
                time.sleep(poll_s)
        yield waited
    finally:
        os.close(fd)  # closing the descriptor drops the lock


class EngineCache:
    """A folder of TensorRT plans keyed by `EngineSpec`."""

    def __init__(self, root: Optional[os.PathLike | str] = None) -> None:
        self.root = Path(root) if root else default_cache_dir()
        self.root.mkdir(parents=True, exist_ok=True)

    def entry(self, spec: EngineSpec) -> Path:
        """The folder of one key."""
        return self.root / spec.key()

    def timing_cache_path(self, spec: EngineSpec) -> Path:
        """One timing cache per (TensorRT version, GPU): every engine built there reuses its tactics."""
        return self.root / f"timing-{_slug(spec.trt_version)}-{_slug(spec.gpu_name)}-sm{_slug(spec.compute_capability)}.cache"

    def read_verified(self, spec: EngineSpec) -> Optional[bytes]:
        """The cached plan bytes if meta.json matches `spec` and the plan's sha256; else None (with why)."""
        d = self.entry(spec)
        try:
            meta = json.loads((d / META).read_text())
            plan = (d / PLAN).read_bytes()
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("engine cache %s: unreadable entry (%s); rebuilding", d, e)
            return None
        if meta.get("spec") != asdict(spec) or meta.get("format") != FORMAT_VERSION:
            log.warning("engine cache %s: meta.json does not match the requested engine; rebuilding", d)
            return None
        if meta.get("plan_bytes") != len(plan) or meta.get("plan_sha256") != hashlib.sha256(plan).hexdigest():
            log.warning("engine cache %s: plan.engine does not match the sha256 in meta.json (corrupt or "
                        "truncated); rebuilding", d)
            return None
        return plan

    def publish(self, spec: EngineSpec, plan: bytes, extra: Optional[dict] = None) -> Path:
        """Write plan then meta atomically; meta last, so a reader never trusts a half-written plan.

        Call it holding the key's lock (get_or_build does).
        """
        d = self.entry(spec)
        d.mkdir(parents=True, exist_ok=True)
        for stale in d.glob(".*.tmp"):  # left by a builder that died mid-write; we hold the lock now
            stale.unlink(missing_ok=True)
        try:
            (d / META).unlink()  # an old meta must not vouch for the new plan while it is being written
        except FileNotFoundError:
            pass
        atomic_write(d / PLAN, plan)
        meta = {"format": FORMAT_VERSION, "key": spec.key(), "spec": asdict(spec), "plan_bytes": len(plan),
                "plan_sha256": hashlib.sha256(plan).hexdigest(), "created": time.time(),
                "builder": {"host": os.uname().nodename, "pid": os.getpid()}, **(extra or {})}
        atomic_write(d / META, json.dumps(meta, indent=1).encode())
        return d / PLAN

    def get_or_build(self, spec: EngineSpec, build: Callable[[Optional[bytes]], tuple[bytes, Optional[bytes]]],
                     load: Callable[[bytes], Any], *, lock_timeout_s: float = 3600.0) -> tuple[Any, str]:
        """Load the engine for `spec`, building it once per node if needed.

        `build(timing_cache_bytes) -> (plan, new_timing_cache)` and `load(plan) -> engine or None`.
        Returns (engine, status) with status "hit" (loaded without waiting), "waited" (another
        process built it), or "built". A plan that fails to load is rebuilt, never trusted.
        """
        plan = self.read_verified(spec)
        if plan is not None:
            engine = load(plan)
            if engine is not None:
                return engine, "hit"
            log.warning("engine cache %s: cached plan did not deserialize; rebuilding", self.entry(spec))
        with file_lock(self.root / f"{spec.key()}.lock", timeout_s=lock_timeout_s) as waited:
            plan = self.read_verified(spec)  # the holder of the lock before us may have built it
            if plan is not None:
                engine = load(plan)
                if engine is not None:
                    return engine, "waited" if waited else "hit"
            tc_path = self.timing_cache_path(spec)
            timing = tc_path.read_bytes() if tc_path.is_file() else None
            t0 = time.perf_counter()
            plan, new_timing = build(timing)
            seconds = time.perf_counter() - t0
            if new_timing:
                atomic_write(tc_path, new_timing)
            self.publish(spec, plan, {"build_seconds": round(seconds, 3)})
            log.info("built TensorRT engine %s in %.1fs", self.entry(spec), seconds)
        engine = load(plan)
        if engine is None:
            raise TeacherError(f"the TensorRT plan just built in {self.entry(spec)} does not deserialize; see the "
                               "TensorRT log above (driver / TensorRT version mismatch?).")
        return engine, "built"

    def entries(self) -> list[dict]:
        """meta.json of every entry (for `engine info`)."""
        out = []
        for m in sorted(self.root.glob(f"*/{META}")):
            try:
                out.append(json.loads(m.read_text()) | {"path": str(m.parent)})
            except (OSError, ValueError):
                out.append({"path": str(m.parent), "error": "unreadable meta.json"})
        return out
