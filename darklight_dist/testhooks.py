"""Test-mode hooks driven by environment variables: fault injection and sample-index logging.

Both are off unless their variable is set; the fault-tolerance tests use them to kill or break a
run at an exact point and to prove which samples each step trained on.

DARKLIGHT_FAULT="point=P[,action=A][,rank=R][,attempt=N][,step=S]"
    P: step:K              after the optimizer step of step K, before it is logged or saved
       save:after_rank_files | save:after_model | save:before_rename | save:before_latest
       | save:before_prune  the stages of `Checkpointer.save`
    A: kill (default)      SIGKILL this process (what a dying node or the OOM killer does)
       enospc              raise OSError(ENOSPC) (a full disk)
    R: only on this global rank; N: only on this torchrun attempt (TORCHELASTIC_RESTART_COUNT,
       default 0, so a restarted worker is not killed again); S: save points only, the save of step S.
    The fault fires at most once per process.

DARKLIGHT_LOG_SAMPLES=PREFIX
    Each rank appends `attempt step epoch idx,idx,...` for every trained batch to PREFIX.rank<R>.
"""

from __future__ import annotations

import errno
import os
import signal
from typing import Optional, Sequence

_fired = False


def _spec() -> Optional[dict[str, str]]:
    raw = os.environ.get("DARKLIGHT_FAULT", "")
    if not raw:
        return None
    return dict(item.split("=", 1) for item in raw.split(",") if "=" in item)


def _attempt() -> int:
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def fault(point: str, *, rank: int, step: Optional[int] = None) -> None:
    """Fire the configured fault if `point` (on `rank`, at `step`) is the one asked for."""
    global _fired
    spec = _spec()
    if spec is None or _fired or spec.get("point") != point:
        return
    if "rank" in spec and int(spec["rank"]) != rank:
        return
    if int(spec.get("attempt", "0")) != _attempt():
        return
    if "step" in spec and step is not None and int(spec["step"]) != step:
        return
    _fired = True
    if spec.get("action", "kill") == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"(injected at {point})")
    os.kill(os.getpid(), signal.SIGKILL)


class SampleLog:
    """Appends the data-set indices of each trained batch to a per-rank file (test mode only)."""

    def __init__(self, rank: int) -> None:
        prefix = os.environ.get("DARKLIGHT_LOG_SAMPLES", "")
        self.path = f"{prefix}.rank{rank}" if prefix else None

    def write(self, step: int, epoch: int, indices: Optional[Sequence[int]]) -> None:
        """One line per step, flushed at once: a SIGKILL must not lose what was trained."""
        if self.path is None or indices is None:
            return
        with open(self.path, "a") as f:
            f.write(f"{_attempt()} {step} {epoch} {','.join(str(int(i)) for i in indices)}\n")
