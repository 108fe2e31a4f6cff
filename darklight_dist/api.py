"""The Python API: build the same run as the CLI from Python objects, in one process or under torchrun.

    from darklight_dist import Distiller
    summary = Distiller(student=my_net, teacher="teacher.onnx", data_path="data/",
                        batch_size=64, epochs=10, kd="soft", kd_temperature=4.0).train()

Keyword names are the CLI flags with dashes as underscores (`--kd-alpha` -> `kd_alpha`).
"""

from __future__ import annotations

from typing import Any, Optional, Union

from torch import nn

from .cli import apply_overrides, load_recipe
from .config import Config
from .distributed import init_distributed, setup_logging


class Distiller:
    """A distillation run from a student module, a teacher (spec or module) and flag-named settings."""

    def __init__(self, student: Union[nn.Module, str, None] = None, teacher: Union[nn.Module, str, None] = None,
                 data_path: Optional[str] = None, *, config: Union[Config, str, None] = None, **settings: Any) -> None:
        if isinstance(config, Config):
            self.cfg = config
        else:
            self.cfg = Config()
            if config:
                load_recipe(config, self.cfg)
        if isinstance(student, str):
            settings["model"] = student
        if isinstance(teacher, str):
            settings["teacher"] = teacher
        if data_path is not None:
            settings["data_path"] = data_path
        apply_overrides(self.cfg, settings, "setting")
        self.student = student if isinstance(student, nn.Module) else None
        self.teacher = teacher if isinstance(teacher, nn.Module) else None

    def train(self, epochs: Optional[int] = None) -> dict[str, Any]:
        """Train (joining torchrun's process group when launched by it) and return the summary."""
        from .trainer import Trainer

        if epochs is not None:
            self.cfg.optim.epochs = epochs
        env = init_distributed(self.cfg.run.device)
        setup_logging(env.rank)
        return Trainer(self.cfg, env, student=self.student, teacher=self.teacher).train()


StudentTrainer = Distiller
"""The seed project's name for the same thing."""
