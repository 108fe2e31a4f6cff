"""Engine cache: key fields, verified loads, atomic publish, rebuild of bad plans, timing cache, lock."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from darklight_dist.teachers.engine_cache import META, PLAN, EngineCache, EngineSpec, file_lock

SPEC = EngineSpec(onnx_sha256="a" * 64, trt_version="10.16.0.72", gpu_name="NVIDIA H100 80GB HBM3",
                  compute_capability="9.0", precision="fp16", layout="nchw", min_batch=1, opt_batch=64,
                  max_batch=128, image_size=224)
CHANGES = {"onnx_sha256": "b" * 64, "trt_version": "11.4.0.106", "gpu_name": "NVIDIA A100-SXM4-80GB",
           "compute_capability": "8.0", "precision": "fp32", "layout": "nhwc", "min_batch": 2, "opt_batch": 32,
           "max_batch": 256, "image_size": 256}


def test_key_is_stable():
    assert SPEC.key() == dataclasses.replace(SPEC).key()
    assert len(SPEC.key()) == 32


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_every_field_changes_the_key(field):
    assert set(CHANGES) == {f.name for f in dataclasses.fields(EngineSpec)}  # no field forgotten here
    assert dataclasses.replace(SPEC, **{field: CHANGES[field]}).key() != SPEC.key()


class Recorder:
    """build/load callables that count calls; load refuses plans listed in `bad`."""

    def __init__(self) -> None:
        self.builds, self.loads, self.timings, self.bad = 0, 0, [], set()

    def build(self, timing):
        self.builds += 1
        self.timings.append(timing)
        return f"plan-{self.builds}".encode() * 100, b"TIMING" + bytes([self.builds])

    def load(self, plan):
        self.loads += 1
        return None if plan in self.bad else ("engine", plan)


def test_built_once_then_loaded(tmp_path):
    cache, rec = EngineCache(tmp_path), Recorder()
    engine, status = cache.get_or_build(SPEC, rec.build, rec.load)
    assert status == "built" and rec.builds == 1
    engine2, status2 = cache.get_or_build(SPEC, rec.build, rec.load)
    assert status2 == "hit" and rec.builds == 1 and engine2 == engine
    assert (cache.entry(SPEC) / PLAN).is_file() and (cache.entry(SPEC) / META).is_file()
    assert not list(cache.entry(SPEC).glob(".*tmp"))  # no temporary left behind


def test_a_builder_that_died_mid_write_leaves_nothing_trusted(tmp_path):
    cache, rec = EngineCache(tmp_path), Recorder()
    entry = cache.entry(SPEC)
    entry.mkdir(parents=True)
    (entry / f".{PLAN}.12345.tmp").write_bytes(b"half a pl")  # crashed before os.replace
    assert cache.read_verified(SPEC) is None
    engine, status = cache.get_or_build(SPEC, rec.build, rec.load)
    assert status == "built" and not list(entry.glob(".*.tmp"))


def test_timing_cache_persisted_and_reused(tmp_path):
    cache, rec = EngineCache(tmp_path), Recorder()
    cache.get_or_build(SPEC, rec.build, rec.load)
    assert cache.timing_cache_path(SPEC).read_bytes() == b"TIMING\x01"
    cache.get_or_build(dataclasses.replace(SPEC, max_batch=256), rec.build, rec.load)
    assert rec.timings == [None, b"TIMING\x01"]  # the second engine's build started from the first's tactics


@pytest.mark.parametrize("damage", ["flip-a-byte", "truncate", "meta-of-another-engine", "no-meta"])
def test_damaged_entries_are_rebuilt_not_trusted(tmp_path, damage):
    cache, rec = EngineCache(tmp_path), Recorder()
    cache.get_or_build(SPEC, rec.build, rec.load)
    plan_path, meta_path = cache.entry(SPEC) / PLAN, cache.entry(SPEC) / META
    plan = bytearray(plan_path.read_bytes())
    if damage == "flip-a-byte":
        plan[len(plan) // 2] ^= 1
        plan_path.write_bytes(bytes(plan))
    elif damage == "truncate":
        plan_path.write_bytes(bytes(plan[:10]))
    elif damage == "meta-of-another-engine":
        meta_path.write_text(meta_path.read_text().replace('"max_batch": 128', '"max_batch": 64'))
    else:
        meta_path.unlink()
    loads_before = rec.loads
    engine, status = cache.get_or_build(SPEC, rec.build, rec.load)
    assert status == "built" and rec.builds == 2
    assert rec.loads == loads_before + 1  # the damaged plan was never handed to the deserializer
    assert cache.read_verified(SPEC) == b"plan-2" * 100


def test_plan_that_fails_to_deserialize_is_rebuilt(tmp_path):
    cache, rec = EngineCache(tmp_path), Recorder()
    cache.get_or_build(SPEC, rec.build, rec.load)
    rec.bad.add(b"plan-1" * 100)  # e.g. a driver or TensorRT update: the runtime returns None
    engine, status = cache.get_or_build(SPEC, rec.build, rec.load)
    assert status == "built" and engine == ("engine", b"plan-2" * 100)


def test_lock_makes_the_second_builder_wait(tmp_path):
    lock = tmp_path / "k.lock"
    events = []

    def holder():
        with file_lock(lock) as waited:
            events.append(("holder", waited))
            time.sleep(0.5)

    t = threading.Thread(target=holder)
    t.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    with file_lock(lock, poll_s=0.02) as waited:
        events.append(("second", waited))
    t.join()
    assert events == [("holder", False), ("second", True)]
    assert time.monotonic() - t0 >= 0.3
