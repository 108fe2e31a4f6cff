"""One process of the engine-cache race: per TensorRT version, wait for its start signal, get the
engine from the shared cache, run a batch, report what happened."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for fake_tensorrt and teacher_testkit


def main(onnx: str, cache: str, rundir: str, name: str) -> None:
    import torch

    from fake_tensorrt import make_fake_tensorrt
    from darklight_dist.teachers.tensorrt import build_tensorrt_teacher
    from teacher_testkit import aligned

    run = Path(rundir)
    (run / f"{name}.ready").touch()
    for major in (10, 11):
        sys.modules["tensorrt"] = fake = make_fake_tensorrt(major)
        while not (run / f"go{major}").exists():  # start together: imports are slow and uneven
            time.sleep(0.01)
        teacher = build_tensorrt_teacher(onnx, device=torch.device("cpu"), max_batch=4, cache_dir=cache)
        logits = teacher(aligned((4, 3, 16, 16)))
        (run / f"{name}.{major}.json").write_text(json.dumps({
            "status": teacher.info.extra["cache"], "builds_here": fake.builds, "logits": logits.tolist(),
            "engine": teacher.info.extra["engine"]}))


if __name__ == "__main__":
    main(*sys.argv[1:])
