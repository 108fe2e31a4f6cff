"""Atomic directory checkpoints with a LATEST pointer, auto-resume, and the save interval decision.

Layout: OUTPUT/checkpoints/step_00001234/{model.pt, train_state.pt, rank0.pt, rank1.pt, ...} and
OUTPUT/checkpoints/LATEST holding the directory name. A checkpoint is written under a temporary name,
fsynced and renamed; LATEST is replaced atomically after that, so a crash at any point leaves the
previous checkpoint loadable. Everything is stored as plain types and tensors (weights_only loads).
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .distributed import DistEnv, barrier
from .errors import CheckpointError

log = logging.getLogger(__name__)

MODEL_FILE, STATE_FILE, LATEST = "model.pt", "train_state.pt", "LATEST"


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_file(obj: Any, path: Path) -> None:
    """torch.save + fsync (the caller renames the enclosing directory)."""
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def write_atomic(path: Path, text: str) -> None:
    """Replace a small text file atomically (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def load_file(path: Path) -> Any:
    """torch.load with weights_only=True; anything else is refused with a clear error."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {path} is missing: the checkpoint is incomplete.") from None
    except Exception as e:
        raise CheckpointError(f"refusing to load {path}: it is not a plain-tensor checkpoint "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:200]}). Only checkpoints written "
                              "by darklight_dist load (weights_only=True; pickled code is never executed).") from None


def rng_state() -> dict[str, Any]:
    """Every host RNG as plain types/tensors (numpy's array becomes a tensor for weights_only)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `rng_state`."""
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class Checkpointer:
    """Decides when to save, saves atomically from all ranks, finds and loads the checkpoint to resume."""

    def __init__(self, output_dir: str | Path, env: DistEnv, *, every_steps: Optional[int], keep: int) -> None:
        self.dir = Path(output_dir) / "checkpoints"
        self.env, self.every_steps, self.keep = env, every_steps, max(1, keep)
        self.last_saved_step = -1

    def should_save(self, step: int, *, epoch_end: bool, last: bool) -> bool:
        """Every N steps if set, else at each epoch end; always at the last step."""
        if step == self.last_saved_step:
            return False
        if last:
            return True
        return (step % self.every_steps == 0) if self.every_steps else epoch_end

    def save(self, step: int, shared: dict[str, Any], model_state: dict[str, torch.Tensor],
             per_rank: dict[str, Any]) -> Path:
        """Collective: every rank writes its rank file, rank 0 the model and shared state, then publishes."""
        name = f"step_{step:08d}"
        tmp, final = self.dir / f".tmp-{name}", self.dir / name
        if self.env.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)  # debris of a save that crashed
            tmp.mkdir()
        barrier()
        save_file(per_rank, tmp / f"rank{self.env.rank}.pt")
        if self.env.is_main:
            save_file(model_state, tmp / MODEL_FILE)
            save_file(shared, tmp / STATE_FILE)
        barrier()
        if self.env.is_main:
            fsync_dir(tmp)
            if final.exists():  # re-saving the same step (e.g. after a resume): replace it
                shutil.rmtree(final)
            os.replace(tmp, final)
            fsync_dir(self.dir)
            write_atomic(self.dir / LATEST, name + "\n")
            self._prune()
        barrier()
        self.last_saved_step = step
        log.info("checkpoint %s written", final)
        return final

    def _prune(self) -> None:
        steps = sorted(p for p in self.dir.glob("step_*") if p.is_dir())
        for old in steps[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    def find(self, resume: str) -> Optional[Path]:
        """The checkpoint directory to resume from, or None to start fresh."""
        if resume == "none":
            return None
        if resume == "auto":
            latest = self.dir / LATEST
            return self.dir / latest.read_text().strip() if latest.is_file() else None
        p = Path(resume)
        if (p / LATEST).is_file():
            p = p / (p / LATEST).read_text().strip()
        elif (p / "checkpoints" / LATEST).is_file():
            p = p / "checkpoints" / (p / "checkpoints" / LATEST).read_text().strip()
        if not (p / STATE_FILE).is_file():
            raise CheckpointError(f"--resume {resume}: no checkpoint there (expected a step_* folder with "
                                  f"{STATE_FILE}, or a folder with a LATEST file). Use --resume auto or none.")
        return p

    def load(self, path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], Optional[dict[str, Any]]]:
        """(shared state, model state_dict, this rank's state or None if the world size changed)."""
        shared = load_file(path / STATE_FILE)
        if not isinstance(shared, dict) or "step" not in shared:
            raise CheckpointError(f"{path / STATE_FILE} is not a darklight_dist checkpoint.")
        model = load_file(path / MODEL_FILE)
        rank_file = path / f"rank{self.env.rank}.pt"
        same_world = shared.get("world_size") == self.env.world_size
        per_rank = load_file(rank_file) if same_world else None
        return shared, model, per_rank
