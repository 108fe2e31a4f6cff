"""Atomic directory checkpoints with a LATEST pointer, auto-resume, and the save interval decision.

Layout: OUTPUT/checkpoints/step_00001234/{model.pt, train_state.pt, rank0.pt, rank1.pt, ...} and
OUTPUT/checkpoints/LATEST holding the directory name. A checkpoint is written under a temporary name,
fsynced and renamed to a name never used before; LATEST is replaced atomically after that, and only
then are old checkpoints pruned. So a crash at any point leaves LATEST naming a complete checkpoint.
A write error on any rank (a full disk) is agreed by all ranks and becomes one CheckpointError.
Everything is stored as plain types and tensors (weights_only loads).
"""

from __future__ import annotations

import errno
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .atomic import atomic_write, fsync_dir, save_file
from .distributed import DistEnv, all_gather_object
from .errors import CheckpointError, ConfigError
from .testhooks import fault

log = logging.getLogger(__name__)

MODEL_FILE, STATE_FILE, LATEST = "model.pt", "train_state.pt", "LATEST"
_NAME = re.compile(r"step_(\d+)(?:-r(\d+))?")


def write_atomic(path: Path, text: str) -> None:
    """Replace a small text file atomically (LATEST, summary.json, config.toml)."""
    atomic_write(path, text)


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


def ensure_writable(output_dir: str | Path) -> None:
    """Fail before training, not at the first save, when --output-dir cannot be written."""
    out = Path(output_dir)
    probe = out / f".write-test-{os.getpid()}"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output-dir {out} is a file, not a folder. Choose another --output-dir.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok\n")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"--output-dir {out} is not writable ({e.strerror or e}). Fix its permissions or choose "
                          "another folder.") from None


def _order(p: Path) -> tuple[int, int]:
    m = _NAME.fullmatch(p.name)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else (-1, -1)


def is_complete(p: Path) -> bool:
    """A published checkpoint directory: its files were all written before it got its name."""
    return p.is_dir() and (p / STATE_FILE).is_file() and (p / MODEL_FILE).is_file()


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

    def latest(self) -> Optional[Path]:
        """The checkpoint LATEST names (None if there is none yet)."""
        f = self.dir / LATEST
        return self.dir / f.read_text().strip() if f.is_file() else None

    def _fresh_name(self, step: int) -> str:
        # A published name is never reused: re-saving a step (after resuming an older checkpoint) gets a
        # suffix, so LATEST never names a directory that is being replaced.
        name, n = f"step_{step:08d}", 0
        while (self.dir / name).exists():
            n += 1
            name = f"step_{step:08d}-r{n}"
        return name

    def save(self, step: int, shared: dict[str, Any], model_state: dict[str, torch.Tensor],
             per_rank: dict[str, Any]) -> Optional[Path]:
        """Collective: every rank writes its rank file, rank 0 the model and shared state, then publishes.

        Returns the published folder on rank 0 (None on the others, which do not learn its name).
        """
        main, rank = self.env.is_main, self.env.rank
        tmp, final, err = self.dir / f".tmp-step_{step:08d}", None, None
        try:
            if main:
                self.dir.mkdir(parents=True, exist_ok=True)
                for debris in self.dir.glob(".tmp-*"):  # left by a save that was killed
                    shutil.rmtree(debris, ignore_errors=True)
                tmp.mkdir()
        except OSError as e:
            err = e
        self._agree(err, tmp)
        try:
            save_file(per_rank, tmp / f"rank{rank}.pt")
            fault("save:after_rank_files", rank=rank, step=step)
            if main:
                save_file(model_state, tmp / MODEL_FILE)
                fault("save:after_model", rank=rank, step=step)
                save_file(shared, tmp / STATE_FILE)
        except OSError as e:
            err = e
        self._agree(err, tmp)
        try:
            if main:
                fsync_dir(tmp)
                final = self.dir / self._fresh_name(step)
                fault("save:before_rename", rank=rank, step=step)
                os.replace(tmp, final)
                fsync_dir(self.dir)
                fault("save:before_latest", rank=rank, step=step)
                write_atomic(self.dir / LATEST, final.name + "\n")
                fault("save:before_prune", rank=rank, step=step)
                self._prune(final)
        except OSError as e:
            err = e
        self._agree(err, tmp)
        self.last_saved_step = step
        if main:
            log.info("checkpoint %s written", final)
        return final

    def _agree(self, err: Optional[OSError], tmp: Path) -> None:
        """Every rank learns whether any rank failed; all raise the same clear error, nothing published."""
        errors = [e for e in all_gather_object(None if err is None else (err.errno, str(err)))
                  if e is not None]
        if not errors:
            return
        if self.env.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        code, text = errors[0]
        prev = self.latest()
        kept = (f"the previous checkpoint {prev} is intact and LATEST still names it" if prev
                else "no checkpoint existed")
        if code == errno.ENOSPC:
            raise CheckpointError(f"no space left on device while writing checkpoint {tmp} ({text}); {kept}. Free "
                                  "space (or use --keep-checkpoints 1, another --output-dir) and rerun to resume.")
        raise CheckpointError(f"cannot write checkpoint {tmp}: {text}; {kept}.")

    def _prune(self, newest: Path) -> None:
        """Keep `newest` and the keep-1 checkpoints before it; drop the ones of an abandoned future."""
        step = _order(newest)[0]
        others = sorted((p for p in self.dir.glob("step_*") if p.is_dir() and p != newest), key=_order)
        older = [p for p in others if _order(p)[0] < step]
        stale = [p for p in others if _order(p)[0] >= step]
        if stale:
            log.info("removing %d checkpoint(s) past step %d left by the run this one resumed from an earlier point",
                     len(stale), step)
        for old in older[: max(0, len(older) - (self.keep - 1))] + stale:
            shutil.rmtree(old, ignore_errors=True)

    def find(self, resume: str) -> Optional[Path]:
        """The checkpoint directory to resume from, or None to start fresh."""
        if resume == "none":
            return None
        if resume == "auto":
            return self._newest_loadable()
        p = Path(resume)
        if (p / LATEST).is_file():
            p = p / (p / LATEST).read_text().strip()
        elif (p / "checkpoints" / LATEST).is_file():
            p = p / "checkpoints" / (p / "checkpoints" / LATEST).read_text().strip()
        if not (p / STATE_FILE).is_file():
            raise CheckpointError(f"--resume {resume}: no checkpoint there (expected a step_* folder with "
                                  f"{STATE_FILE}, or a folder with a LATEST file). Use --resume auto or none.")
        return p

    def _newest_loadable(self) -> Optional[Path]:
        latest = self.latest()
        if latest is not None and is_complete(latest):
            return latest
        found = sorted((p for p in self.dir.glob("step_*") if is_complete(p)), key=_order)
        if found:  # LATEST lost or damaged by hand: the newest complete checkpoint is the next best
            log.warning("LATEST in %s names no complete checkpoint; resuming from %s", self.dir, found[-1])
            return found[-1]
        return None

    def load(self, path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], Optional[dict[str, Any]]]:
        """(shared state, model state_dict, this rank's state or None if the world size changed)."""
        shared = load_file(path / STATE_FILE)
        if not isinstance(shared, dict) or "step" not in shared:
            raise CheckpointError(f"{path / STATE_FILE} is not a darklight_dist checkpoint.")
        model = load_file(path / MODEL_FILE)
        same_world = shared.get("world_size") == self.env.world_size
        per_rank = load_file(path / f"rank{self.env.rank}.pt") if same_world else None
        return shared, model, per_rank
