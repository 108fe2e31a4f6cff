"""Stop requests (SIGTERM, SIGUSR1 from SLURM before preemption or the time limit), agreed by all ranks.

A signal may reach the ranks at different steps. Each step every rank contributes its local flag to
an asynchronous all-reduce on a CPU (gloo) group and reads the result of the previous step's one, so
all ranks stop at the same step without a device sync or a blocking collective in the loop.
"""

from __future__ import annotations

import logging
import signal
from typing import Any, Optional

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    """Catches the stop signals and turns them into a step at which every rank stops together."""

    def __init__(self) -> None:
        self.local = False
        self.signal_name: Optional[str] = None
        self._group: Any = None
        self._work: Any = None
        self._buf = torch.zeros(1)
        self._previous = {}
        if dist.is_available() and dist.is_initialized():
            # A CPU group even under NCCL: the flag never touches the GPU stream.
            self._group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: Any) -> None:
        self.local = True
        self.signal_name = signal.Signals(signum).name

    def should_stop(self) -> bool:
        """True on every rank at the same step once any rank got a signal (one step of latency)."""
        if not (dist.is_available() and dist.is_initialized()):
            return self.local
        agreed = False
        if self._work is not None:
            self._work.wait()
            agreed = bool(self._buf.item() > 0)
        self._buf = torch.tensor([1.0 if self.local else 0.0])
        self._work = dist.all_reduce(self._buf, group=self._group, async_op=True)
        return agreed

    def close(self) -> None:
        """Finish the in-flight collective and restore the previous handlers."""
        if self._work is not None:
            self._work.wait()
            self._work = None
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
