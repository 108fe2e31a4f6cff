"""`python -m darklight_dist.report RUN_DIR`: RUN_DIR/report.png with loss, accuracy, images/s and phase panels.

matplotlib is an optional extra (`pip install 'darklight-dist[plot]'`). Exit status 2, with one line
saying what to do, when it is missing or RUN_DIR has no log.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

from .errors import DarklightError
from .metrics import PHASES

COLORS = {"data": "#4c72b0", "teacher": "#dd8452", "student": "#55a868", "allreduce": "#c44e52",
          "optimizer": "#8172b3", "other": "#937860"}


def read_run(run_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Optional[dict[str, Any]]]:
    """(train records, eval records, summary or None) of a run directory."""
    log = run_dir / "log.jsonl"
    if not log.is_file():
        raise DarklightError(f"{run_dir} has no log.jsonl: give the --output-dir of a run that has started.")
    recs, lines = [], log.read_text().splitlines()
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                recs.append(json.loads(line))
            except ValueError:
                if n < len(lines):  # a torn last line of a running job is fine
                    raise DarklightError(f"{log}:{n} is not JSON; the file is damaged.") from None
    train = [r for r in recs if r.get("type") == "train"]
    if not train:
        raise DarklightError(f"{log} has no training records yet: wait for the first --log-every-steps steps.")
    summary = None
    if (run_dir / "summary.json").is_file():
        summary = json.loads((run_dir / "summary.json").read_text())
    return train, [r for r in recs if r.get("type") == "eval"], summary


NOT_LOSS = {"type", "step", "epoch", "lr", "images_per_s", "step_ms", "host_rss_mb"}


def loss_keys(train: list[dict[str, Any]]) -> list[str]:
    """The loss and its parts (whatever the objective logs): every number that is not a rate, a time or a share."""
    keys = {k for r in train for k, v in r.items() if isinstance(v, (int, float)) and k not in NOT_LOSS
            and not k.endswith(("_ms", "_share"))}
    return sorted(keys, key=lambda k: (k != "loss", k))


def plot(run_dir: Path, out: Optional[Path] = None) -> Path:
    """Write the four-panel report; returns its path."""
    try:
        import matplotlib
    except ImportError:
        raise DarklightError("the report needs matplotlib: pip install 'darklight-dist[plot]'") from None
    matplotlib.use("Agg")  # files only: no display on training machines
    import matplotlib.pyplot as plt

    train, evals, summary = read_run(run_dir)
    steps = [r["step"] for r in train]
    fig, ax = plt.subplots(2, 2, figsize=(12, 8))
    (loss_ax, acc_ax), (speed_ax, phase_ax) = ax

    for key in loss_keys(train):
        loss_ax.plot(steps, [r.get(key, float("nan")) for r in train], label=key, lw=1.2 if key == "loss" else 0.8)
    if evals and "kl" in evals[0]:
        loss_ax.plot([e["step"] for e in evals], [e["kl"] for e in evals], "o--", label="val KL(teacher||student)")
    loss_ax.set(title="loss", xlabel="step")
    loss_ax.legend(fontsize=8)

    if evals:
        es = [e["step"] for e in evals]
        for key, style in (("top1", "o-"), ("top5", "s:"), ("teacher_top1", "^--"), ("agreement", "x-.")):
            if key in evals[0]:
                acc_ax.plot(es, [e[key] for e in evals], style, label=key)
        acc_ax.legend(fontsize=8)
    else:
        acc_ax.text(0.5, 0.5, "no evaluation yet", ha="center", va="center", transform=acc_ax.transAxes)
    acc_ax.set(title="validation accuracy (%)", xlabel="step")

    speed_ax.plot(steps, [r["images_per_s"] for r in train], lw=1)
    if summary:
        speed_ax.axhline(summary["images_per_s"], ls="--", c="gray",
                         label=f"run average {summary['images_per_s']:.0f} (incl. eval)")
        speed_ax.legend(fontsize=8)
    speed_ax.set(title="images/s (all ranks)", xlabel="step", ylim=(0, None))

    shown = [k for k in PHASES if any(r.get(f"{k}_ms", 0.0) for r in train)]
    series = [[r.get(f"{k}_ms", 0.0) for r in train] for k in shown]
    if len(train) > 40:  # many records: an area chart stays readable where bars become hairlines
        phase_ax.stackplot(steps, *series, labels=shown, colors=[COLORS[k] for k in shown], lw=0)
    else:
        bottom = [0.0] * len(train)
        for k, vals in zip(shown, series):
            phase_ax.bar(steps, vals, bottom=bottom, width=_bar_width(steps), color=COLORS[k], label=k, lw=0)
            bottom = [b + v for b, v in zip(bottom, vals)]
    phase_ax.plot(steps, [r["step_ms"] for r in train], "k.", ms=3, label="measured step")
    share = (summary or {}).get("phases", {}).get("share")
    title = "ms per step by phase"
    if share:
        parts = [f"{k} {100 * v:.0f}%" for k, v in share.items() if v >= 0.005]
        title += "\nrun: " + ", ".join(parts[:3]) + ("\n" + ", ".join(parts[3:]) if parts[3:] else "")
    phase_ax.set(title=title, xlabel="step", ylabel="ms", ylim=(0, None))
    phase_ax.legend(fontsize=7, ncol=4, loc="lower center")

    fig.suptitle(f"{run_dir.resolve().name}: " + (_caption(summary) if summary else "running"), fontsize=10)
    fig.tight_layout()
    out = out or run_dir / "report.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _bar_width(steps: list[int]) -> float:
    return 0.8 * (min(b - a for a, b in zip(steps, steps[1:])) if len(steps) > 1 else 1)


def _caption(s: dict[str, Any]) -> str:
    b = s.get("backends", {})
    top1 = f"{s['student_top1']:.2f}%" if s.get("student_top1") is not None else "-"
    return (f"{s['steps']} steps, {s['images_per_s']:.0f} img/s, top-1 {top1}, teacher {b.get('teacher')}, "
            f"data {b.get('data')}, {s.get('world_size', 1)} rank(s), peak host RSS "
            f"{max(s.get('peak_host_rss_mb_per_rank') or [s.get('peak_host_rss_mb', 0)]):.0f} MB per rank")


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: 0 written, 2 bad input (missing matplotlib, not a run directory)."""
    p = argparse.ArgumentParser(prog="python -m darklight_dist.report", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="a run's --output-dir (with log.jsonl)")
    p.add_argument("-o", "--output", type=Path, help="PNG path (default RUN_DIR/report.png)")
    a = p.parse_args(argv)
    try:
        out = plot(a.run_dir, a.output)
    except DarklightError as e:
        print(f"darklight_dist: error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
