"""`python -m darklight_dist.compare RUN_DIR...`: the runs' summaries side by side (the demo's table)."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from .errors import DarklightError


def row(run_dir: Path) -> dict[str, Any]:
    """One table row from a run's summary.json and config.toml."""
    try:
        s = json.loads((run_dir / "summary.json").read_text())
        c = tomllib.loads((run_dir / "config.toml").read_text())
    except (OSError, ValueError) as e:
        raise DarklightError(f"{run_dir} is not a finished run (summary.json/config.toml unreadable: {e}).") from None
    labels = "none (label-free)" if c["data"]["unlabeled"] else f"{100 * c['data']['train_fraction']:g}%"
    return {"run": run_dir.name, "model": c["student"]["model"], "kd": c["distill"]["kd"], "labels": labels,
            "top1": s["student_top1"], "agreement": (s.get("final_eval") or {}).get("agreement"),
            "images_per_s": s["images_per_s"], "wall_s": s["wall_s"], "steps": s["steps"]}


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width text table."""
    head = f"{'run':<12} {'model':<16} {'kd':<5} {'labels used':<18} {'val top-1':>9} {'agree':>6} {'img/s':>8} {'wall s':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        agree = f"{r['agreement']:.1f}" if r["agreement"] is not None else "-"
        lines.append(f"{r['run']:<12} {r['model']:<16} {r['kd']:<5} {r['labels']:<18} {r['top1']:>8.2f}% "
                     f"{agree:>6} {r['images_per_s']:>8.0f} {r['wall_s']:>7.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the table; with --json FILE also write the rows."""
    p = argparse.ArgumentParser(prog="python -m darklight_dist.compare", description=__doc__)
    p.add_argument("runs", nargs="+", type=Path, help="run directories (each with summary.json)")
    p.add_argument("--json", type=Path, help="also write the rows to this file")
    a = p.parse_args(argv)
    try:
        rows = [row(r) for r in a.runs]
    except DarklightError as e:
        print(f"darklight_dist: error: {e}", file=sys.stderr)
        return 2
    print(format_table(rows))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
