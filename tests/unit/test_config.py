"""CLI flags, recipes and the resolved config.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from darklight_dist.cli import load_recipe, parse_args, to_toml
from darklight_dist.config import Config
from darklight_dist.errors import ConfigError
from darklight_dist.optim import lr_factor


def test_torchvision_flag_names_map_to_fields() -> None:
    cfg = parse_args(["--data-path", "d", "--model", "resnet18", "-b", "64", "--epochs", "3", "--lr", "0.5",
                      "--wd", "0.01", "--amp", "bf16", "--resume", "none", "--output-dir", "o", "-j", "2",
                      "--channels-last", "--kd", "hard", "--kd-alpha", "0.25"])
    assert (cfg.data.data_path, cfg.student.model, cfg.optim.batch_size, cfg.optim.epochs) == ("d", "resnet18", 64, 3)
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.run.amp, cfg.checkpoint.resume) == (0.5, 0.01, "bf16", "none")
    assert (cfg.data.workers, cfg.run.channels_last, cfg.distill.kd, cfg.distill.alpha) == (2, True, "hard", 0.25)


def test_flags_override_recipe_and_recipe_overrides_defaults(tmp_path: Path) -> None:
    r = tmp_path / "r.toml"
    r.write_text('[optim]\nbatch_size = 7\nlr = 1\n[distill]\nkd = "fm"\n')
    cfg = parse_args(["--config", str(r), "--lr", "0.3"])
    assert cfg.optim.batch_size == 7 and cfg.optim.lr == 0.3 and cfg.distill.kd == "fm"
    assert isinstance(parse_args(["--config", str(r)]).optim.lr, float)  # TOML int promoted to float


@pytest.mark.parametrize("text,needle", [
    ('[optim]\nbatch_sise = 7\n', "unknown key 'batch_sise' in [optim]"),
    ('[optimizer]\nlr = 1.0\n', "unknown table [optimizer]"),
    ('[distill]\nkd = "magic"\n', "not one of soft, hard, fm, none"),
    ('[optim]\nbatch_size = "big"\n', "should be of type int"),
    ('[optim\n', "not valid TOML"),
])
def test_bad_recipes_are_clear_errors(tmp_path: Path, text: str, needle: str) -> None:
    r = tmp_path / "r.toml"
    r.write_text(text)
    with pytest.raises(ConfigError, match=None) as e:
        load_recipe(r, Config())
    assert needle in str(e.value)


def test_resolved_toml_round_trips(tmp_path: Path) -> None:
    cfg = parse_args(["--data-path", "x y\"z", "--mean", "0.5", "0.5", "0.5", "--max-steps", "9", "--unlabeled"])
    (tmp_path / "c.toml").write_text(to_toml(cfg))
    again = Config()
    load_recipe(tmp_path / "c.toml", again)
    assert again == cfg


def test_lr_schedule_warmup_then_cosine() -> None:
    c = Config().optim
    c.lr_warmup_epochs, c.lr_scheduler = 1, "cosine"
    f = [lr_factor(s, total_steps=20, steps_per_epoch=5, cfg=c) for s in range(20)]
    assert f[0] == pytest.approx(0.2) and f[4] == pytest.approx(1.0)  # linear warmup over 5 steps
    assert f[5] == pytest.approx(1.0) and f[-1] < 0.02 and all(a >= b for a, b in zip(f[5:], f[6:]))
    c.lr_scheduler, c.lr_warmup_epochs, c.lr_step_size, c.lr_gamma = "step", 0, 2, 0.1
    assert lr_factor(9, total_steps=20, steps_per_epoch=5, cfg=c) == pytest.approx(1.0)
    assert lr_factor(10, total_steps=20, steps_per_epoch=5, cfg=c) == pytest.approx(0.1)
