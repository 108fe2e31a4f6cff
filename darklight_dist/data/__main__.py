"""`python -m darklight_dist.data scan|shards`: find undecodable images, or write WebDataset shards.

Exit status: 0 done, 2 bad input (one message, no traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

from ..errors import DarklightError, DataError
from .builtin import resolve_data_path
from .layout import FileSet, scan_image_folder, scan_unlabeled_folder


def _splits(root: Path, unlabeled: bool) -> list[tuple[str, FileSet]]:
    if (root / "train").is_dir() and (root / "val").is_dir():
        train = scan_unlabeled_folder(root / "train") if unlabeled else scan_image_folder(root / "train", "train")
        return [("train", train), ("val", scan_image_folder(root / "val", "val"))]
    return [("files", scan_unlabeled_folder(root) if unlabeled else scan_image_folder(root))]


def cmd_scan(args: argparse.Namespace) -> int:
    """Decode every image; write clean lists (paths relative to --data-path) and bad.txt to --out."""
    from .scan import decode_check, write_list

    root = Path(resolve_data_path(args.data_path))
    if not root.is_dir():
        raise DataError(f"--data-path {root} does not exist.")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create --out {out} ({e.strerror}).") from None
    bad_lines = []
    for name, fs in _splits(root, args.unlabeled):
        abs_paths = [str(fs.root / f) for f in fs.files]
        rel = [os.path.relpath(p, root) for p in abs_paths]
        res = decode_check(abs_paths, workers=args.workers, label=f"scan {name}", progress=not args.quiet)
        write_list(out / f"{name}.txt", [rel[i] for i in res.good], [fs.labels[i] for i in res.good])
        bad_lines += [f"{rel[i]}\t{why}" for i, why in res.bad]
        bad_lines += [f"{os.path.relpath(fs.root / s, root)}\tnot an image (extension)" for s in fs.skipped]
        print(f"{name}: {len(res.good)} images decode, {len(res.bad)} do not, {len(fs.skipped)} non-image files "
              f"skipped -> {out / (name + '.txt')}")
    (out / "bad.txt").write_text("".join(line + "\n" for line in bad_lines))
    for line in bad_lines[:10]:
        print("  bad:", line.replace("\t", ": "))
    if len(bad_lines) > 10:
        print(f"  ... {len(bad_lines) - 10} more in {out / 'bad.txt'}")
    if bad_lines:
        print(f"Train with --train-list {out / 'train.txt'} --val-list {out / 'val.txt'} to leave them out.")
    return 0


def cmd_shards(args: argparse.Namespace) -> int:
    """ImageFolder -> WebDataset tar shards with DALI index files."""
    from .webdataset import write_shards

    root = Path(resolve_data_path(args.data_path))
    manifest = write_shards(root, args.out, args.shard_size, seed=args.seed, unlabeled=args.unlabeled)
    for name, split in manifest["splits"].items():
        print(f"{name}: {len(split['labels'])} samples in {len(split['tars'])} shard(s) under {Path(args.out) / name}")
    print(f"Train with --data-path {args.out}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The command-line parser of `python -m darklight_dist.data`."""
    p = argparse.ArgumentParser(prog="python -m darklight_dist.data", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scan", help="decode every image with DALI's decoder; write clean file lists")
    s.add_argument("--data-path", required=True, help="dataset root with train/ and val/, or one ImageFolder")
    s.add_argument("--out", default=".", help="folder for train.txt, val.txt (or files.txt) and bad.txt")
    s.add_argument("--unlabeled", action="store_true", help="train/ is a flat folder of images without classes")
    s.add_argument("-j", "--workers", type=int, default=0, help="decode processes (default: all cores)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_scan)
    w = sub.add_parser("shards", help="write ImageFolder train/ and val/ as WebDataset tars with DALI .idx files")
    w.add_argument("--data-path", required=True, help="dataset root with train/ and val/")
    w.add_argument("--out", required=True, help="empty folder for the shards")
    w.add_argument("--shard-size", type=int, default=1000, help="samples per tar (about 100 MB of ImageNet JPEGs)")
    w.add_argument("--seed", type=int, default=0, help="seed of the train-set order written into the shards")
    w.add_argument("--unlabeled", action="store_true", help="train/ is a flat folder of images without classes")
    w.set_defaults(fn=cmd_shards)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: run a subcommand, turning a DarklightError into one line on stderr and exit 2."""
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except DarklightError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # a path we cannot read or write is bad input too
        print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
