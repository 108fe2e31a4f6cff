"""What a checkpoint holds of a Trainer and how a Trainer is restored from one (exact, mid-epoch).

Shared state (one file): optimizer, scheduler, grad scaler, step, epoch, best eval, config, teacher
fingerprint. Per-rank state (one file per rank): every host RNG, the loader's position and RNG, the
mixing RNG. Restoring all of it makes the continued run bitwise equal to an uninterrupted one on
CPU with --deterministic. With another world size the shards differ, so the run restarts at the
last epoch boundary instead.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from . import __version__
from .checkpoint import rng_state, set_rng_state
from .distributed import DistEnv
from .errors import CheckpointError

if TYPE_CHECKING:
    from .trainer import Trainer

log = logging.getLogger(__name__)


def resume_spec(requested: str, env: DistEnv, latest: Optional[Path]) -> str:
    """--resume, except that a worker group restarted by torchrun always continues from the latest checkpoint."""
    if env.restart_count > 0 and latest is not None and requested != "auto":
        log.warning("restart %d of the worker group: resuming from the latest checkpoint %s instead of "
                    "--resume %s", env.restart_count, latest, requested)
        return "auto"
    return requested


def shared_state(t: "Trainer") -> dict[str, Any]:
    """Training state common to all ranks (plain types and tensors)."""
    return {"step": t.step, "epoch": t.epoch, "optimizer": t.optimizer.state_dict(),
            "scheduler": t.scheduler.state_dict(), "scaler": t.scaler.state_dict(),
            "config": t.cfg.to_dict(), "world_size": t.env.world_size, "best": t.best,
            "teacher": t.teacher.fingerprint() if t.teacher is not None else None,
            "teacher_eval": t.teacher_eval, "interruptions": t.interruptions,
            "skipped_steps": t.skipped_steps, "version": __version__}


def rank_state(t: "Trainer") -> dict[str, Any]:
    """This rank's stream: host RNGs, loader position/RNG, mixing RNG."""
    return {"rng": rng_state(), "data": t.data.train.state_dict(), "mixer": t.mixer.state_dict()}


def restore(t: "Trainer", path: Path) -> None:
    """Load `path` into the trainer, refusing a checkpoint of another teacher or model."""
    shared, model_state, per_rank = t.checkpointer.load(path)
    mine = t.teacher.fingerprint() if t.teacher is not None else None
    if shared.get("teacher") != mine:
        raise CheckpointError(f"checkpoint {path} was made with teacher {shared.get('teacher')}, this run uses "
                              f"{mine}. Resume with the same teacher or use a new --output-dir.")
    try:
        t.student.load_state_dict(model_state)
    except (RuntimeError, TypeError, AttributeError) as e:
        saved = (shared.get("config") or {}).get("student", {}).get("model")
        raise CheckpointError(f"checkpoint {path} holds another model ({saved}) than --model "
                              f"{t.cfg.student.model}: {str(e).splitlines()[0][:200]}. Resume with the same "
                              "--model or use a new --output-dir.") from None
    t.optimizer.load_state_dict(shared["optimizer"])
    t.scheduler.load_state_dict(shared["scheduler"])
    t.scaler.load_state_dict(shared["scaler"])
    t.step, t.epoch, t.best = shared["step"], shared["epoch"], shared["best"]
    t.teacher_eval, t.interruptions = shared.get("teacher_eval"), shared.get("interruptions", 0)
    t.skipped_steps = shared.get("skipped_steps", 0)
    if per_rank is not None:
        set_rng_state(per_rank["rng"])
        t.data.train.load_state_dict(per_rank["data"])
        t.mixer.load_state_dict(per_rank["mixer"])
    else:
        log.warning("checkpoint %s was written by %s ranks, this run has %d: the data shards differ, so the run "
                    "resumes at the start of epoch %d (the %d steps done in it are replayed)", path,
                    shared["world_size"], t.env.world_size, t.epoch, t.step - t.epoch * t.steps_per_epoch)
        t.step = t.epoch * t.steps_per_epoch
        with warnings.catch_warnings():  # put the LR schedule at the new step count ("step before optimizer")
            warnings.simplefilter("ignore")
            t.scheduler.last_epoch = t.step - 1
            t.scheduler.step()
    t.checkpointer.last_saved_step = t.step
    t.resumed_from = str(path)
    log.info("resumed from %s at step %d (epoch %d)", path, t.step, t.epoch)
