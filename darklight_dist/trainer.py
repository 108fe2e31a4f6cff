"""The Trainer: one rank's distillation loop. `train()` reads like the data flow of DESIGN.md."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from . import __version__
from .atomic import atomic_torch_save
from .checkpoint import Checkpointer, ensure_writable, write_atomic
from .cli import to_toml
from .config import Config
from .data import DataBundle, build_loaders
from .data.batch import Batch
from .data.mixing import Mixer, mixing_alphas
from .distributed import DistEnv, all_gather_object, all_reduce_min
from .errors import ConfigError, NonFiniteLossError
from .evaluation import evaluate
from .losses import build_loss
from .memory import device_free_bytes, device_peaks_mb
from .metrics import MetricLogger, ddp_split_hook
from .models import build_model, count_parameters
from .optim import build_optimizer, build_scheduler
from .overlap import Ahead, TeacherFeed, overlap_decision
from .preemption import StopRequest
from .resume import rank_state, restore, resume_spec, shared_state
from .teachers import TeacherInfo, build_teacher, teacher_parity
from .testhooks import SampleLog, fault

log = logging.getLogger(__name__)

AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed python, numpy and torch; optionally demand deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def validate_config(cfg: Config) -> None:
    """Reject contradictory settings before anything is built."""
    d = cfg.distill
    if cfg.data.unlabeled and (d.kd == "none" or (d.kd in ("soft", "hard") and d.alpha < 1.0)):
        raise ConfigError(f"--unlabeled has no labels to train on: use --kd fm, or --kd {d.kd} with --kd-alpha 1 "
                          f"(got --kd {d.kd} --kd-alpha {d.alpha}).")
    if not 0.0 <= d.alpha <= 1.0:
        raise ConfigError(f"--kd-alpha {d.alpha} must be in [0, 1].")
    if d.temperature <= 0:
        raise ConfigError(f"--kd-temperature {d.temperature} must be positive.")
    if cfg.optim.batch_size < 1 or cfg.optim.epochs < 0:
        raise ConfigError("--batch-size must be >= 1 and --epochs >= 0.")


def check_teacher_input(info: TeacherInfo, image_size: int, teacher_input_size: Optional[int]) -> None:
    """A teacher with a fixed input side (ONNX, engine) must get exactly that side."""
    given = teacher_input_size or image_size
    if info.input_size is not None and info.input_size != given:
        how = f"--teacher-input-size {teacher_input_size}" if teacher_input_size else f"--image-size {image_size}"
        raise ConfigError(f"the teacher takes {info.input_size}x{info.input_size} images but would get {given}x{given} "
                          f"({how}). Pass --teacher-input-size {info.input_size} to resize the crop for the teacher, "
                          f"or train at --image-size {info.input_size}.")


class Trainer:
    """Holds the student (DDP), teacher, data, optimizer, checkpointer and metrics of one rank."""

    def __init__(self, cfg: Config, env: DistEnv, *, student: Optional[nn.Module] = None,
                 teacher: Union[str, nn.Module, None] = None, data: Optional[DataBundle] = None) -> None:
        validate_config(cfg)
        ensure_writable(cfg.checkpoint.output_dir)
        self.cfg, self.env, self.device = cfg, env, env.device
        seed_everything(cfg.run.seed, cfg.run.deterministic)
        self.data = data or build_loaders(cfg, env)
        self.num_classes = cfg.student.num_classes or self.data.num_classes
        self.model = self._build_student(student)
        self.teacher, self.teacher_reason, self.parity = None, "not used (--kd none)", None
        self._evals = 0
        free_before = device_free_bytes(self.device)
        if cfg.distill.kd != "none":
            self.teacher, self.teacher_reason = build_teacher(cfg, teacher if teacher is not None else cfg.teacher.spec,
                                                              num_classes=self.num_classes, device=self.device)
            check_teacher_input(self.teacher.info, cfg.data.image_size, cfg.teacher.input_size)
            self.parity = self._check_parity(teacher if teacher is not None else cfg.teacher.spec)
        # measured, whatever allocates it (torch, TensorRT, ORT arenas): the driver's free memory before and after
        self.teacher_device_mb = (None if free_before is None else
                                  round((free_before - device_free_bytes(self.device)) / 2**20, 1))
        self.overlap, self.overlap_reason = overlap_decision(cfg.run.overlap, self.device, self.teacher is not None)
        mixup, cutmix = mixing_alphas(cfg.distill.kd, cfg.distill.mixup_alpha, cfg.distill.cutmix_alpha)
        self.mixer = Mixer(mixup_alpha=mixup, cutmix_alpha=cutmix, num_classes=self.num_classes, seed=cfg.run.seed,
                           rank=env.rank)
        self.loss_fn = build_loss(cfg.distill.kd, temperature=cfg.distill.temperature, alpha=cfg.distill.alpha,
                                  label_smoothing=cfg.distill.label_smoothing)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.steps_per_epoch = self.data.train.steps_per_epoch
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.run.amp == "fp16")
        self.total_steps = cfg.optim.epochs * self.steps_per_epoch
        if cfg.optim.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.optim.max_steps)
        self.out = Path(cfg.checkpoint.output_dir)
        self.checkpointer = Checkpointer(self.out, env, every_steps=cfg.checkpoint.every_steps,
                                         keep=cfg.checkpoint.keep)
        self.step, self.epoch, self.best, self.last_eval, self.teacher_eval = 0, 0, None, None, None
        self.stop_reason, self.resumed_from, self.interruptions, self.skipped_steps = "completed", None, 0, 0
        self.eval_step = -1
        self._bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
        self.samples = SampleLog(env.rank)

    # ----------------------------------------------------------------------------------------- build
    def _build_student(self, student: Optional[nn.Module]) -> nn.Module:
        if student is None:
            if not self.cfg.student.model:
                raise ConfigError("--model is required: the student (a torchvision name such as resnet18, "
                                  "'package.module:callable', or a builtin such as digits-cnn).")
            student = build_model(self.cfg.student.model, self.num_classes)
        model = student.to(self.device)
        if self.cfg.run.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.student = model  # unwrapped: what checkpoints hold
        log.info("student: %s, %.2fM parameters", self.cfg.student.model or type(model).__name__,
                 count_parameters(model) / 1e6)
        self._ddp = None
        if self.env.distributed:
            model = self._ddp = DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return torch.compile(model) if self.cfg.run.compile else model

    def autocast(self) -> contextlib.AbstractContextManager:
        """The student's autocast context (a no-op without --amp)."""
        amp = self.cfg.run.amp
        if amp == "none":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AMP_DTYPES[amp])

    def teacher_view(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's input: the very same tensor, unless the teacher wants another resolution."""
        size = self.cfg.teacher.input_size
        if size is None or size == images.shape[-1]:
            return images
        return nn.functional.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                                         align_corners=False)

    # ----------------------------------------------------------------------------------------- loop
    def train(self) -> dict[str, Any]:
        """Resume if asked, train to the last step (or a stop request), evaluate, write the summary."""
        self.resume()
        self.metrics = self._make_metrics()
        feed = TeacherFeed(self.teacher_logits, self.metrics.timer, overlap=self.overlap)
        self.stop = StopRequest()
        self.model.train()
        t0 = time.perf_counter()
        while self.step < self.total_steps and self.stop_reason == "completed":
            self.data.train.set_epoch(self.epoch)
            for batch, ahead in feed.epoch(self._mixed(self.data.train)):
                self.train_step(batch) if ahead is None else self.train_step(batch, ahead)  # subclasses: (batch)
                self._after_step()
                if self.step >= self.total_steps or self.stop_reason != "completed":
                    break
        self.stop.close()
        return self.finish(time.perf_counter() - t0)

    def _mixed(self, loader: Iterable[Batch]) -> Iterator[Batch]:
        """Mix each batch once as it leaves the loader, before anything sees it: teacher (also when it
        runs ahead on its side stream, where this generator is advanced) and student get the same image."""
        for batch in loader:
            images, targets = self.mixer(batch.images, batch.labels)
            yield Batch(images, targets, batch.indices, batch.valid) if images is not batch.images else batch

    def teacher_logits(self, images: torch.Tensor) -> Optional[torch.Tensor]:
        """The frozen teacher's logits for the batch (None without a teacher)."""
        return self.teacher(self.teacher_view(images)) if self.teacher is not None else None

    def train_step(self, batch: Batch, ahead: Optional[Ahead] = None) -> None:
        """Teacher and student on the same (mixed) device tensor; loss; backward; optimizer and LR step."""
        images, targets = batch.images, batch.labels
        with self.metrics.timer.phase("teacher"):  # with overlap: only the wait for the side stream
            t_logits = ahead.wait() if ahead is not None else self.teacher_logits(images)
        with self.metrics.timer.phase("student", tail="allreduce"):  # the DDP hook marks where the tail begins
            with self.autocast():
                s_logits = self.model(images)
            loss, parts = self.loss_fn(s_logits, t_logits, targets)
            self.scaler.scale(loss).backward()
        with self.metrics.timer.phase("optimizer"):
            self._optimizer_step(loss)
        self.metrics.update(parts, len(batch))
        self.step += 1
        self.samples.write(self.step, self.epoch, batch.indices)
        fault(f"step:{self.step}", rank=self.env.rank)

    def _optimizer_step(self, loss: torch.Tensor) -> None:
        finite = torch.isfinite(loss.detach())
        self._bad_step = torch.where(~finite & (self._bad_step < 0), self.step, self._bad_step)
        # The one mode that syncs per step; all ranks agree, since one rank's NaN reaches every rank's gradients.
        if self.cfg.checkpoint.on_nonfinite == "skip" and not bool(all_reduce_min(finite.to(torch.int32))):
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()  # the LR stays a function of the step count
            self.skipped_steps += 1
            if self.env.is_main:
                log.warning("step %d: non-finite loss, step skipped (--on-nonfinite skip)", self.step + 1)
            return
        if self.cfg.optim.clip_grad_norm:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()

    def _after_step(self) -> None:
        """Components decide: log, evaluate, stop on request, checkpoint."""
        epoch_end = self.step % self.steps_per_epoch == 0  # every rank runs the same steps per epoch
        self.epoch += int(epoch_end)
        last = self.step >= self.total_steps
        self.metrics.advance()
        if self.stop.should_stop(self.step):
            self.stop_reason, self.interruptions = "signal", self.interruptions + 1
        if self.metrics.maybe_log(self.step, self.epoch, self.scheduler.get_last_lr()[0], force=last or epoch_end):
            self._check_finite()
        if epoch_end and (self.epoch % self.cfg.metrics.eval_every_epochs == 0 or last):
            with self.metrics.excluded():  # not a step: kept out of the phases and of images/s
                self.run_eval()
        if self.checkpointer.should_save(self.step, epoch_end=epoch_end,
                                         last=last or self.stop_reason != "completed"):
            with self.metrics.excluded():
                self.save()

    def _check_finite(self) -> None:
        """Collective: stop every rank if the loss was non-finite on any rank since the start."""
        if self.cfg.checkpoint.on_nonfinite != "stop":
            return
        never = torch.iinfo(torch.long).max
        first = int(all_reduce_min(torch.where(self._bad_step < 0, never, self._bad_step)))
        if first != never:
            raise NonFiniteLossError(f"the loss became NaN or infinite at step {first + 1}. No checkpoint was "
                                     "written after it. Lower --lr, add --clip-grad-norm, check the data, or pass "
                                     "--on-nonfinite skip.")

    def _check_parity(self, spec: Any) -> dict[str, Any]:
        """The chosen backend against its fp32 reference on the first validation batch (TeacherError if off)."""
        batch = next(iter(self.data.val))
        n = batch.valid if batch.valid is not None else len(batch)
        return teacher_parity(self.cfg, self.teacher, spec, self.teacher_view(batch.images[:n]), self.num_classes,
                              self.device)

    def run_eval(self) -> dict[str, Any]:
        """Evaluate on val/ (always a whole fresh pass), log it, track the best top-1."""
        self._evals += 1
        self.data.val.set_epoch(self._evals)
        res = evaluate(self.model, self.data.val, teacher=self.teacher, teacher_view=self.teacher_view,
                       device=self.device, autocast=self.autocast)
        if self.teacher_eval is None and "teacher_top1" in res:
            self.teacher_eval = res["teacher_top1"]
        self.last_eval, self.eval_step = res, self.step
        if self.best is None or res["top1"] > self.best["top1"]:
            self.best = {"top1": res["top1"], "top5": res["top5"], "step": self.step}
        self.metrics.write({"type": "eval", "step": self.step, "epoch": self.epoch, **res})
        if self.env.is_main:
            log.info("eval step %d epoch %d: %s", self.step, self.epoch,
                     ", ".join(f"{k} {v:.2f}" for k, v in res.items() if isinstance(v, float)))
        return res

    # ----------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Shared training state (plain types and tensors)."""
        return shared_state(self)

    def save(self) -> None:
        """Checkpoint (collective), never over a non-finite loss or non-finite weights."""
        self._check_finite()
        if not all(bool(torch.isfinite(p).all()) for p in self.student.parameters()):
            raise NonFiniteLossError(f"the student's weights are NaN or infinite at step {self.step}; not saving "
                                     f"them over {self.checkpointer.latest()}. Lower --lr or add --clip-grad-norm.")
        self.checkpointer.save(self.step, shared_state(self), self.student.state_dict(), rank_state(self))

    def resume(self) -> None:
        """Restore the checkpoint --resume names (always the latest after a torchrun restart)."""
        spec = resume_spec(self.cfg.checkpoint.resume, self.env, self.checkpointer.latest())
        path = self.checkpointer.find(spec)
        if path is not None:
            restore(self, path)

    # ----------------------------------------------------------------------------------------- outputs
    def _make_metrics(self) -> MetricLogger:
        if self.env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_atomic(self.out / "config.toml", to_toml(self.cfg))
        metrics = MetricLogger(self.out, is_main=self.env.is_main, every=self.cfg.metrics.log_every_steps,
                               total_steps=self.total_steps, start_step=self.step, device=self.device,
                               world_size=self.env.world_size, progress=self.cfg.metrics.progress,
                               tensorboard=self.cfg.metrics.tensorboard)
        if self._ddp is not None and not getattr(self._ddp, "_darklight_hook", False):
            self._ddp.register_comm_hook(None, ddp_split_hook(lambda: self.metrics.timer))
            self._ddp._darklight_hook = True  # a comm hook can be registered once per DDP module
        return metrics

    def finish(self, wall_s: float) -> dict[str, Any]:
        """Final evaluation if none ran at this step, summary.json, final weights; returns the summary."""
        if self.eval_step != self.step and self.stop_reason == "completed":
            self.run_eval()
        self.metrics.maybe_log(self.step, self.epoch, self.scheduler.get_last_lr()[0], force=True)
        host = all_gather_object(self.metrics.memory.stop())  # a collective: every rank reaches finish()
        summary = {
            "stop_reason": self.stop_reason, "steps": self.step, "epochs": self.epoch, "total_steps": self.total_steps,
            "world_size": self.env.world_size, "restarts": self.env.restart_count,
            "requeues": self.env.requeue_count,
            "interruptions": self.interruptions, "resumed_from": self.resumed_from,
            "stop_signal": ({"name": self.stop.signal_name, "noticed_at_step": self.stop.noticed_at_step}
                            if self.stop.signal_name else None),
            "skipped_steps": self.skipped_steps,
            "images_seen": self.metrics.images_seen, "wall_s": round(wall_s, 3),
            "images_per_s": round(self.metrics.images_seen / max(wall_s, 1e-9), 2),
            "phases": self.metrics.phase_breakdown(), "peak_host_rss_mb": host[self.env.rank]["rss_mb"],
            "peak_host_rss_mb_per_rank": [h["rss_mb"] for h in host],
            "peak_host_pss_mb_per_rank": [h["pss_mb"] for h in host],
            "peak_device_mem_mb": device_peaks_mb(self.device)["allocated"],
            "device_memory_mb": {**device_peaks_mb(self.device), "teacher": self.teacher_device_mb},
            "teacher_top1": self.teacher_eval, "teacher_parity": self.parity,
            "student_top1": (self.last_eval or {}).get("top1"),
            "student_top5": (self.last_eval or {}).get("top5"), "best": self.best, "final_eval": self.last_eval,
            "backends": {"data": self.data.backend, "data_reason": self.data.reason,
                         "teacher": self.teacher.info.backend if self.teacher is not None else None,
                         "teacher_reason": self.teacher_reason, "teacher_copies": getattr(self.teacher, "copies", 0),
                         "process_group": self.env.backend, "device": str(self.device),
                         "overlap": self.overlap, "overlap_reason": self.overlap_reason},
            "student_parameters": count_parameters(self.student), "version": __version__,
        }
        if self.env.is_main:
            if self.stop_reason == "completed":
                atomic_torch_save(self.student.state_dict(), self.out / "student.pt")
            write_atomic(self.out / "summary.json", json.dumps(summary, indent=2) + "\n")
        self.metrics.close()
        return summary
