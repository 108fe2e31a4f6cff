"""`python -m darklight_dist.export`: a model (name, module:callable, weights) -> a checked ONNX file."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Optional, Sequence

from .cli_errors import exit_on_darklight_error


def parser() -> argparse.ArgumentParser:
    """The export command line."""
    p = argparse.ArgumentParser(prog="python -m darklight_dist.export", description=__doc__)
    p.add_argument("--model", required=True, help="torchvision name | timm:NAME | module:callable | builtin:NAME")
    p.add_argument("--weights", help="state_dict (or {'model': state_dict} checkpoint) to load, weights_only")
    p.add_argument("--num-classes", type=int, required=True, help="width of the logits")
    p.add_argument("--image-size", type=int, required=True, help="side of the square input")
    p.add_argument("--out", required=True, help="FILE.onnx (external data, if any, lands next to it)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16"),
                   help="graph dtype; TensorRT 11 builds exactly this precision")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (the dynamo exporter needs >= 18)")
    p.add_argument("--exporter", default="dynamo", choices=("dynamo", "legacy"),
                   help="torch.export-based (default) or the legacy TorchScript exporter")
    return p


def quiet_exporter_logs() -> None:
    """The dynamo exporter's optimizer logs every pass at INFO; keep our own INFO lines readable."""
    for name in ("onnxscript", "onnx_ir", "torch.onnx"):
        logging.getLogger(name).setLevel(logging.WARNING)


@exit_on_darklight_error
def main(argv: Optional[Sequence[str]] = None) -> int:
    """Export, check and compare; print a JSON report on stdout."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    quiet_exporter_logs()
    from .teachers.export import export_onnx
    report = export_onnx(args.model, args.out, num_classes=args.num_classes, image_size=args.image_size,
                         weights=args.weights, precision=args.precision, opset=args.opset, exporter=args.exporter)
    print(json.dumps(report.as_dict(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
