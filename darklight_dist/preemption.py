"""Stop requests (SIGTERM, SIGUSR1 from SLURM before preemption or the time limit), agreed by all ranks.

A signal may reach the ranks at different steps. Each step every rank contributes its local flag to
an asynchronous all-reduce on a CPU (gloo) group and reads the result of the previous step's one, so
all ranks stop at the same step without a device sync or a blocking collective in the loop.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from typing import Any, Iterator, Optional

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def ignore_stop_signals(_worker_id: int = 0) -> None:
    """worker_init_fn of loader worker processes: SLURM signals every process of the job, and a worker
    killed by SIGTERM would crash the rank before it can checkpoint. The rank stops its workers itself."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by `stop_signals_blocked` at fork


@contextlib.contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Hold the stop signals while loader workers are forked: a worker inherits the mask, so a signal
    cannot kill it before `ignore_stop_signals` runs; the parent gets held signals on exit."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class StopRequest:
    """Catches the stop signals and turns them into a step at which every rank stops together."""

    def __init__(self) -> None:
        self.local = False
        self.signal_name: Optional[str] = None
        self.noticed_at_step: Optional[int] = None
        """The step just finished when this rank first saw its signal."""
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

    def should_stop(self, step: int) -> bool:
        """True on every rank at the same step once any rank got a signal (one step of latency).

        Called once per step, after step `step`.
        """
        if self.local and self.noticed_at_step is None:
            self.noticed_at_step = step
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
