"""Process-group setup from torchrun (or SLURM) variables, device and backend choice, rank helpers."""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int
    restart_count: int
    """torchrun restarts of the worker group (TORCHELASTIC_RESTART_COUNT)."""
    requeue_count: int
    """SLURM requeues of the job (SLURM_RESTART_COUNT)."""
    device: torch.device
    backend: str | None
    """"nccl" | "gloo", or None for a single process without a group."""

    @property
    def is_main(self) -> bool:
        """Rank 0 writes metrics, summaries and checkpoints metadata."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether a process group is initialized."""
        return self.backend is not None


def _env_int(*names: str, default: int) -> int:
    for n in names:
        if os.environ.get(n, "") != "":
            return int(os.environ[n])
    return default


def choose_device(requested: str, local_rank: int) -> torch.device:
    """cuda:LOCAL_RANK when CUDA is asked for or available, else cpu."""
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was requested but no CUDA device is visible. Use --device cpu.")
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"local rank {local_rank} has no GPU: only {torch.cuda.device_count()} visible. "
                              "Start at most one process per GPU (--nproc_per_node).")
        torch.cuda.set_device(local_rank)  # TensorRT, DALI and NCCL all use the current device
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def attempt_store(restart: int, timeout: datetime.timedelta) -> dist.Store:
    """torchrun's shared store, with its own key space for each attempt of the worker group.

    torchrun (c10d rendezvous) lets the workers reuse its store; after a --max-restarts restart the
    new workers would otherwise read the dead group's gloo/NCCL addresses from it and fail to connect
    (pytorch/pytorch#135712). Multi-node agents may disagree on the restart count; there, launch with
    TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 (a fresh store per round, and this path is not taken).
    """
    base = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=timeout)
    return dist.PrefixStore(f"darklight/attempt_{restart}", base)


def init_distributed(device_request: str = "auto", timeout_s: int = 1800) -> DistEnv:
    """Read torchrun's variables (falling back to SLURM's for srun-launched ranks) and join the group."""
    rank = _env_int("RANK", "SLURM_PROCID", default=0)
    world = _env_int("WORLD_SIZE", "SLURM_NTASKS", default=1)
    local_rank = _env_int("LOCAL_RANK", "SLURM_LOCALID", default=0)
    local_world = _env_int("LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE", default=1)
    node_rank = _env_int("GROUP_RANK", "SLURM_NODEID", default=0)
    restarts = _env_int("TORCHELASTIC_RESTART_COUNT", default=0)
    device = choose_device(device_request, local_rank)
    backend = None
    if world > 1:
        if "MASTER_ADDR" not in os.environ:
            raise ConfigError("WORLD_SIZE > 1 but MASTER_ADDR is unset: launch with torchrun "
                              "(or export MASTER_ADDR/MASTER_PORT under srun).")
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"backend": backend, "rank": rank, "world_size": world,
                                  "timeout": datetime.timedelta(seconds=timeout_s)}
        if device.type == "cuda":
            kwargs["device_id"] = device  # eager NCCL communicator: errors surface at start-up
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            kwargs["store"] = attempt_store(restarts, kwargs["timeout"])
        dist.init_process_group(**kwargs)
    env = DistEnv(rank, world, local_rank, local_world, node_rank, restarts, _env_int("SLURM_RESTART_COUNT", default=0),
                  device, backend)
    log.info("rank %d/%d (local %d, node %d) on %s, backend %s", rank, world, local_rank, node_rank, device,
             backend or "none")
    return env


def teardown() -> None:
    """Destroy the process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Barrier when distributed, no-op otherwise."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """In-place sum across ranks (identity for one process)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_min(t: torch.Tensor) -> torch.Tensor:
    """In-place minimum across ranks (identity for one process)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return t


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s object on every rank (identity for one process)."""
    if dist.is_available() and dist.is_initialized():
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]
    return obj


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's object, in rank order."""
    if dist.is_available() and dist.is_initialized():
        out: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]


class RankFilter(logging.Filter):
    """Prefix log records with the rank that speaks."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank = self.rank
        return True


def setup_logging(rank: int, level: int = logging.INFO) -> None:
    """Log lines as `[rank N] level: message`; ranks other than 0 only log warnings and errors."""
    handler = logging.StreamHandler()
    handler.addFilter(RankFilter(rank))
    handler.setFormatter(logging.Formatter("[rank %(rank)s] %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if rank == 0 else logging.WARNING)
