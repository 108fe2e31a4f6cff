"""Model specs -> nn.Module: builtin names, torchvision/timm names, or "module:callable"."""

from __future__ import annotations

import importlib
import inspect
from typing import Callable

from torch import nn

from .errors import ConfigError


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def digits_cnn(num_classes: int = 10) -> nn.Module:
    """A ~45k-parameter CNN student for small images (the demo's student)."""
    return nn.Sequential(
        _conv_bn(3, 16), _conv_bn(16, 32, 2), _conv_bn(32, 48, 2), _conv_bn(48, 64, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(64, num_classes),
    )


def digits_teacher(num_classes: int = 10) -> nn.Module:
    """A ~290k-parameter CNN teacher for small images (the demo's teacher: 6x the student)."""
    return nn.Sequential(
        _conv_bn(3, 32), _conv_bn(32, 32), _conv_bn(32, 64, 2), _conv_bn(64, 64),
        _conv_bn(64, 128, 2), _conv_bn(128, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Dropout(0.2), nn.Linear(128, num_classes),
    )


def tiny_mlp(num_classes: int = 10) -> nn.Module:
    """A BatchNorm-free model: per-rank batch statistics cannot make DDP ranks differ."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(8), nn.Flatten(), nn.Linear(3 * 64, 64), nn.ReLU(),
                         nn.Linear(64, num_classes))


BUILTIN: dict[str, Callable[..., nn.Module]] = {
    "digits-cnn": digits_cnn,
    "digits-teacher": digits_teacher,
    "tiny-mlp": tiny_mlp,
}


def _from_callable(spec: str, num_classes: int) -> nn.Module:
    mod_name, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"model '{spec}': cannot import {attr!r} from module {mod_name!r} ({e}). "
                          "Give 'package.module:function' on the PYTHONPATH.") from None
    params = inspect.signature(fn).parameters
    model = fn(num_classes=num_classes) if "num_classes" in params else fn()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model '{spec}': the callable returned {type(model).__name__}, not a torch.nn.Module.")
    return model


def build_model(spec: str, num_classes: int) -> nn.Module:
    """Build a randomly initialized model from a spec (weights are loaded by the caller)."""
    name = spec.removeprefix("builtin:")
    if name in BUILTIN:
        return BUILTIN[name](num_classes=num_classes)
    if ":" in spec and not spec.startswith("builtin:"):
        return _from_callable(spec, num_classes)
    if spec.startswith("timm:"):
        try:
            import timm  # optional dependency
        except ImportError:
            raise ConfigError(f"model '{spec}' needs timm: pip install timm") from None
        return timm.create_model(spec[5:], num_classes=num_classes)
    import torchvision
    if name in torchvision.models.list_models():
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    raise ConfigError(
        f"unknown model '{spec}'. Use a torchvision name (e.g. resnet18, mobilenet_v3_small), 'timm:NAME', "
        f"'package.module:callable', or a builtin: {', '.join(sorted(BUILTIN))}.")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
