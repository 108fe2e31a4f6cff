"""Typed configuration of a run: one dataclass per component, each field a documented flag.

Every field carries its command-line flag and a one-line help text in its metadata; `cli.py`
builds the argument parser and the TOML recipe reader from these, so a field added here is
a flag, a recipe key and a line of the resolved `config.toml` at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional


def option(default: Any, flag: str, help: str, *, short: str | None = None,
        choices: tuple[str, ...] | None = None) -> Any:
    """A config field with its CLI flag (kebab-case), optional short flag, choices and help."""
    meta = {"flag": flag, "help": help, "short": short, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    """Where images come from and how they are decoded and augmented."""

    data_path: Optional[str] = option(None, "--data-path", "dataset root with train/ and val/ (ImageFolder), "
                                   "a folder of *.tar shards, or builtin:digits")
    train_list: Optional[str] = option(None, "--train-list", "file list for training: 'relative/path label' lines")
    val_list: Optional[str] = option(None, "--val-list", "file list for validation: 'relative/path label' lines")
    unlabeled: bool = option(False, "--unlabeled", "train/ holds images without classes: distill from the teacher only")
    backend: str = option("auto", "--data-backend", "data loader", choices=("auto", "dali", "torchvision", "synthetic"))
    workers: int = option(4, "--workers", "decode threads (DALI) or worker processes (torchvision) per rank", short="-j")
    dali_decode: str = option("auto", "--dali-decode", "where DALI decodes JPEGs: mixed = GPU, cpu = host threads",
                           choices=("auto", "mixed", "cpu"))
    hw_decoder_load: float = option(0.65, "--hw-decoder-load", "share of JPEGs sent to the hardware decoder (mixed only)")
    image_size: int = option(224, "--image-size", "side of the square training and validation crop")
    val_resize_size: int = option(256, "--val-resize-size", "validation: resize the shorter side to this, then center-crop")
    min_scale: float = option(0.08, "--min-scale", "smallest area fraction of the random-resized crop")
    train_fraction: float = option(1.0, "--train-fraction", "train on a seeded, stratified fraction of the labeled train set")
    synthetic_size: int = option(1024, "--synthetic-size", "images per epoch of the synthetic backend")
    mean: list = option([0.485, 0.456, 0.406], "--mean", "per-channel normalization mean (0-1 scale)")
    std: list = option([0.229, 0.224, 0.225], "--std", "per-channel normalization std (0-1 scale)")


@dataclass
class TeacherConfig:
    """The frozen model whose logits the student learns from."""

    spec: Optional[str] = option(None, "--teacher", "FILE.onnx | model name | module:callable | builtin:digits-teacher")
    weights: Optional[str] = option(None, "--teacher-weights", "state_dict file for a named teacher (loaded weights_only)")
    backend: str = option("auto", "--teacher-backend", "teacher runtime",
                       choices=("auto", "tensorrt", "onnxruntime", "torch"))
    precision: str = option("fp32", "--teacher-precision", "teacher arithmetic", choices=("fp32", "fp16", "bf16"))
    input_size: Optional[int] = option(None, "--teacher-input-size", "teacher sees the same crop resized to this side "
                                    "(default: --image-size)")
    max_batch_size: Optional[int] = option(None, "--teacher-max-batch", "largest batch of the engine profile "
                                        "(default: the per-rank batch size)")
    engine_cache: Optional[str] = option(None, "--engine-cache", "folder for TensorRT plans and timing caches "
                                      "(default: $DARKLIGHT_CACHE/engines)")
    parity_tolerance: float = option(0.05, "--teacher-parity-tol", "largest allowed top-1 disagreement of the teacher "
                                  "backend with its fp32 reference at start-up")
    compile: bool = option(False, "--teacher-compile", "torch backend: torch.compile the teacher")
    cuda_graph: bool = option(False, "--teacher-cuda-graph", "torch backend on CUDA: replay a captured CUDA graph")


@dataclass
class StudentConfig:
    """The model being trained."""

    model: Optional[str] = option(None, "--model", "student: torchvision/timm name | module:callable | builtin name")
    num_classes: Optional[int] = option(None, "--num-classes", "output classes (default: the number of class folders)")


@dataclass
class DistillConfig:
    """The distillation objective and the augmentations both models share."""

    kd: str = option("soft", "--kd", "soft = Hinton, hard = DeiT hard-label, fm = function matching, none = labels only",
                  choices=("soft", "hard", "fm", "none"))
    temperature: float = option(1.0, "--kd-temperature", "softmax temperature T of the distillation term")
    alpha: float = option(0.5, "--kd-alpha", "weight of the distillation term; 1 - alpha weighs the label term")
    label_smoothing: float = option(0.0, "--label-smoothing", "label smoothing of the label term")
    mixup_alpha: Optional[float] = option(None, "--mixup-alpha", "Beta(a, a) mixup; 0 = off "
                                          "(default: 1.0 for --kd fm as in Beyer et al., else off)")
    cutmix_alpha: Optional[float] = option(None, "--cutmix-alpha", "Beta(a, a) cutmix; 0 = off")


@dataclass
class OptimConfig:
    """Schedule, optimizer and the batch."""

    batch_size: int = option(32, "--batch-size", "images per rank per step", short="-b")
    epochs: int = option(90, "--epochs", "passes over the training set")
    max_steps: Optional[int] = option(None, "--max-steps", "stop after this many steps (smoke runs, benchmarks)")
    opt: str = option("sgd", "--opt", "optimizer", choices=("sgd", "adamw"))
    lr: float = option(0.1, "--lr", "peak learning rate")
    momentum: float = option(0.9, "--momentum", "SGD momentum")
    weight_decay: float = option(1e-4, "--wd", "weight decay")
    lr_scheduler: str = option("cosine", "--lr-scheduler", "learning-rate schedule after warmup",
                            choices=("cosine", "step", "constant"))
    lr_warmup_epochs: float = option(0.0, "--lr-warmup-epochs", "linear warmup length in epochs")
    lr_step_size: int = option(30, "--lr-step-size", "step schedule: epochs between decays")
    lr_gamma: float = option(0.1, "--lr-gamma", "step schedule: decay factor")
    clip_grad_norm: Optional[float] = option(None, "--clip-grad-norm", "clip the global gradient norm to this")


@dataclass
class CheckpointConfig:
    """Where a run writes, and how it saves and resumes."""

    output_dir: str = option("runs/default", "--output-dir", "folder for config.toml, log.jsonl, summary.json, checkpoints/")
    resume: str = option("auto", "--resume", "auto = latest checkpoint in --output-dir if any | none | PATH")
    every_steps: Optional[int] = option(None, "--ckpt-every-steps", "save every N steps (default: every epoch)")
    keep: int = option(3, "--keep-checkpoints", "how many checkpoints to keep")
    on_nonfinite: str = option("stop", "--on-nonfinite", "non-finite loss: stop with an error or skip the step",
                            choices=("stop", "skip"))


@dataclass
class MetricsConfig:
    """What is logged, how often, and evaluation."""

    log_every_steps: int = option(10, "--log-every-steps", "write a step record to log.jsonl every N steps")
    eval_every_epochs: int = option(1, "--eval-every-epochs", "evaluate on val/ every N epochs (and at the end)")
    tensorboard: bool = option(False, "--tensorboard", "also write TensorBoard event files")
    progress: bool = option(True, "--progress", "rank-0 progress bar")


@dataclass
class RunConfig:
    """Process-level settings: device, precision, reproducibility."""

    device: str = option("auto", "--device", "where to run", choices=("auto", "cpu", "cuda"))
    amp: str = option("none", "--amp", "student autocast precision", choices=("none", "fp16", "bf16"))
    channels_last: bool = option(False, "--channels-last", "student (and data) in channels_last memory format")
    compile: bool = option(False, "--compile", "torch.compile the student")
    seed: int = option(0, "--seed", "seed of every RNG (python, numpy, torch, data, mixing)")
    deterministic: bool = option(False, "--deterministic", "deterministic algorithms (bitwise-reproducible on CPU)")
    overlap: bool = option(True, "--overlap", "GPU: run the teacher one batch ahead on its own stream")
    dry_run: bool = option(False, "--dry-run", "build everything, print the resolved config, train nothing")


@dataclass
class Config:
    """A whole run. Sections map to recipe tables ([data], [teacher], ...)."""

    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (safe for checkpoints and TOML)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, dict[str, Any]]) -> "Config":
        """Inverse of `to_dict` (unknown keys are the caller's to reject)."""
        cfg = cls()
        for section, values in d.items():
            sec = getattr(cfg, section)
            for k, v in values.items():
                setattr(sec, k, v)
        return cfg


SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Config))
