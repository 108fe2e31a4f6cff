"""Every recipe parses, type-checks and passes the trainer's validation (--dry-run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from darklight_dist.train import run

RECIPES = sorted((Path(__file__).resolve().parents[2] / "launch" / "recipes").glob("*.toml"))


def test_the_four_recipes_exist() -> None:
    assert {p.stem for p in RECIPES} >= {"digits", "imagenet_rn34_to_rn18_kd", "imagenet_funmatch_r152x2_to_r50",
                                         "imagenet_deit_hard"}


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_dry_run(recipe: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(["--config", str(recipe), "--dry-run", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "[optim]" in out and "batch_size" in out
    header = recipe.read_text().splitlines()[:12]
    assert any("darklight_dist.train" in ln or "make demo" in ln or "sbatch" in ln for ln in header), \
        "a recipe's header comment states its command"
