"""`python -m darklight_dist.engine build|info`: build a TensorRT engine into the cache, or list the cache."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Optional, Sequence

from .cli_errors import exit_on_darklight_error


def parser() -> argparse.ArgumentParser:
    """The engine command line."""
    p = argparse.ArgumentParser(prog="python -m darklight_dist.engine", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or find) the engine for an ONNX teacher")
    b.add_argument("--onnx", required=True, help="FILE.onnx from python -m darklight_dist.export")
    b.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"),
                   help="TensorRT 10: builder flag; TensorRT 11: must equal the ONNX dtype")
    b.add_argument("--layout", default="nchw", choices=("nchw", "nhwc"),
                   help="input memory layout the engine reads (nhwc = channels_last data)")
    b.add_argument("--min-batch", type=int, default=1)
    b.add_argument("--opt-batch", type=int, default=None, help="batch the kernels are tuned for (default: max)")
    b.add_argument("--max-batch", type=int, required=True, help="largest batch the engine accepts")
    b.add_argument("--image-size", type=int, default=None, help="default: from the ONNX")
    b.add_argument("--device", default="cuda", help="CUDA device, e.g. cuda:0")
    b.add_argument("--cache", default=None, help="engine cache folder (default: $DARKLIGHT_CACHE/engines)")
    i = sub.add_parser("info", help="list the cached engines and their keys")
    i.add_argument("--cache", default=None, help="engine cache folder (default: $DARKLIGHT_CACHE/engines)")
    return p


@exit_on_darklight_error
def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run a subcommand; JSON on stdout."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .teachers.engine_cache import EngineCache
    if args.cmd == "info":
        cache = EngineCache(args.cache)
        print(json.dumps({"cache": str(cache.root), "engines": cache.entries()}, indent=1))
        return 0
    import torch
    from .teachers.tensorrt import build_tensorrt_teacher
    teacher = build_tensorrt_teacher(args.onnx, device=torch.device(args.device), precision=args.precision,
                                     layout=args.layout, min_batch=args.min_batch, opt_batch=args.opt_batch,
                                     max_batch=args.max_batch, image_size=args.image_size, cache_dir=args.cache)
    print(json.dumps(teacher.info.extra | {"num_classes": teacher.info.num_classes,
                                           "sha256": teacher.info.model_sha256}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
