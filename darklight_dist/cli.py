"""Command line and TOML recipes -> Config. Flags come from the config fields' metadata.

Precedence: defaults < recipe (--config FILE.toml) < flags given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
import typing
from pathlib import Path
from typing import Any, Optional, Sequence

from .config import SECTIONS, Config
from .errors import ConfigError


def _fields() -> list[tuple[str, dataclasses.Field, Any]]:
    """(section, field, resolved type) for every config field."""
    out = []
    cfg = Config()
    for section in SECTIONS:
        sec = getattr(cfg, section)
        hints = typing.get_type_hints(type(sec))
        for f in dataclasses.fields(sec):
            out.append((section, f, hints[f.name]))
    return out


def flag_dest(flag: str) -> str:
    """`--kd-alpha` -> `kd_alpha`: the keyword name used by the CLI and the Python API."""
    return flag.lstrip("-").replace("-", "_")


def field_index() -> dict[str, tuple[str, str]]:
    """Keyword name (flag dest) -> (section, field name)."""
    return {flag_dest(f.metadata["flag"]): (s, f.name) for s, f, _ in _fields()}


def _base_type(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args else tp


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    """argparse parser with torchvision's flag names; every default is SUPPRESS so we see what was given."""
    p = argparse.ArgumentParser(prog="python -m darklight_dist.train", argument_default=argparse.SUPPRESS,
                                description="Distill a teacher into a student on one or many GPUs (or CPUs).")
    p.add_argument("--config", metavar="FILE.toml", help="a recipe; flags on the command line override it")
    groups = {s: p.add_argument_group(s) for s in SECTIONS}
    for section, f, tp in _fields():
        m, base = f.metadata, _base_type(tp)
        names = [m["flag"]] + ([m["short"]] if m["short"] else [])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        helptext = f"{m['help']} (default: {default})"
        if base is bool:
            groups[section].add_argument(*names, dest=flag_dest(m["flag"]), nargs="?", const=True, type=_bool,
                                         help=helptext + "; --flag or --flag false")
        elif base is list or typing.get_origin(base) is list:
            groups[section].add_argument(*names, dest=flag_dest(m["flag"]), nargs="+", type=float, help=helptext)
        else:
            groups[section].add_argument(*names, dest=flag_dest(m["flag"]), type=base, choices=m["choices"],
                                         help=helptext)
    return p


def _check_value(where: str, section: str, name: str, value: Any, tp: Any, choices: Optional[tuple]) -> Any:
    base = _base_type(tp)
    if value is None:
        return None
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    expected = list if (base is list or typing.get_origin(base) is list) else base
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: [{section}] {name} = {value!r} should be of type {expected.__name__}.")
    if choices and value not in choices:
        raise ConfigError(f"{where}: [{section}] {name} = {value!r} is not one of {', '.join(choices)}.")
    return value


def load_recipe(path: str | Path, cfg: Config) -> None:
    """Apply a TOML recipe's tables onto `cfg`; unknown tables or keys are errors, not silently ignored."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file.") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config {path}: not valid TOML ({e}).") from None
    types = {(s, f.name): (tp, f.metadata["choices"]) for s, f, tp in _fields()}
    for section, table in data.items():
        if section not in SECTIONS or not isinstance(table, dict):
            raise ConfigError(f"--config {path}: unknown table [{section}]; known: {', '.join(SECTIONS)}.")
        for key, value in table.items():
            if (section, key) not in types:
                known = sorted(n for s, n in types if s == section)
                raise ConfigError(f"--config {path}: unknown key '{key}' in [{section}]; known: {', '.join(known)}.")
            tp, choices = types[(section, key)]
            setattr(getattr(cfg, section), key, _check_value(str(path), section, key, value, tp, choices))


def apply_overrides(cfg: Config, overrides: dict[str, Any], where: str = "argument") -> None:
    """Set fields by keyword name (`batch_size=64`, `kd_alpha=0.9`), type-checked."""
    index = field_index()
    types = {(s, f.name): (tp, f.metadata["choices"]) for s, f, tp in _fields()}
    for key, value in overrides.items():
        if key not in index:
            raise ConfigError(f"unknown {where} '{key}'. Known: {', '.join(sorted(index))}.")
        section, name = index[key]
        tp, choices = types[(section, name)]
        setattr(getattr(cfg, section), name, _check_value(where, section, name, value, tp, choices))


def parse_args(argv: Optional[Sequence[str]] = None) -> Config:
    """Defaults, then the recipe, then the flags given."""
    ns = vars(build_parser().parse_args(argv))
    cfg = Config()
    recipe = ns.pop("config", None)
    if recipe:
        load_recipe(recipe, cfg)
    apply_overrides(cfg, ns, "flag")
    return cfg


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_toml(cfg: Config) -> str:
    """The resolved configuration as a recipe (None values are left out: they mean 'default')."""
    lines = ["# Resolved configuration of this run; rerun with: python -m darklight_dist.train --config THIS_FILE"]
    for section, values in cfg.to_dict().items():
        lines.append(f"\n[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"
