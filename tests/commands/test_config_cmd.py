"""`config validate|sample|paths` and `themes list|show`: exit codes, every problem listed, no drift."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ai_wallpaper.commands import config_cmd, themes_cmd
from ai_wallpaper.commands.context import AppContext
from ai_wallpaper.config.settings import Settings, load_settings
from ai_wallpaper.core.errors import WallpaperError
from ai_wallpaper.core.paths import SHIPPED_CONFIG_DIR, Paths

REPO = Path(__file__).resolve().parents[2]


def test_shipped_settings_yaml_is_exactly_the_generated_sample() -> None:
    shipped = (REPO / "config" / "settings.yaml").read_text(encoding="utf-8")
    assert shipped == config_cmd.sample_text(), (
        "config/settings.yaml drifted from the schema: regenerate it with "
        "`ai-wallpaper config sample > config/settings.yaml`"
    )
    settings, _ = load_settings(REPO / "config" / "settings.yaml")
    assert settings == Settings()


def test_sample_is_fully_commented() -> None:
    lines = config_cmd.sample_text().splitlines()
    keys = [
        ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#") and not ln.rstrip().endswith(":")
    ]
    for i, line in enumerate(lines):
        if line in keys:
            assert lines[i - 1].lstrip().startswith("# type:"), line  # every value says its type and bounds
    assert any("max 4096; multiple of 8" in ln for ln in lines)


def test_validate_shipped_config_checks_files_and_names_models_to_fetch(
        paths: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    rc = config_cmd.validate(argparse.Namespace(), AppContext(paths=paths))
    out = capsys.readouterr().out
    assert "absent: all defaults" in out and f"ok   {SHIPPED_CONFIG_DIR / 'themes.yaml'}" in out
    assert "ok   " + str(SHIPPED_CONFIG_DIR / "loras.yaml") in out
    # A fresh machine has neither default model yet: validate says so (the README's Real use says how).
    assert rc == 1 and "BAD  models" in out
    assert "models.base: 'stabilityai/stable-diffusion-xl-base-1.0'" in out
    assert "models.upscaler: 'RealESRGAN_x4plus.pth' was not found" in out
    paths.config_dir.mkdir(parents=True)
    (paths.config_dir / "settings.yaml").write_text("models: {base: 'builtin:tiny', upscaler: 'builtin:tiny'}\n")
    rc = config_cmd.validate(argparse.Namespace(), AppContext(paths=paths))
    out = capsys.readouterr().out
    assert rc == 0 and "all config files are valid" in out, out


def test_validate_lists_every_problem_in_every_file(
    paths: Paths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    themes = tmp_path / "themes.yaml"
    themes.write_text(
        "categories: {a: {name: A}}\nthemes:\n  t: {name: T, category: b, templates: ['{elem}']}\n"
    )
    settings = paths.config_dir / "settings.yaml"
    settings.parent.mkdir(parents=True)
    settings.write_text(
        f"themes:\n  file: {themes}\n"
        "pipeline:\n  txt2img:\n    width: 1921\n    stepz: 10\n"
        "weather:\n  provider: openmeteo\n  cache_minutes: -1\n"
    )
    rc = config_cmd.validate(argparse.Namespace(), AppContext(paths=paths))
    out = capsys.readouterr().out
    assert rc == 1
    assert (
        f"{settings}:5: pipeline.txt2img.width: must be a multiple of 8, got 1921 (hint: use 1920 or 1928)"
        in out
    )
    assert f"{settings}:6: pipeline.txt2img.stepz: unknown key (hint: did you mean 'steps'?)" in out
    assert f"{settings}:8: weather.provider: expected one of 'open-meteo', 'nws', got 'openmeteo'" in out
    assert f"{settings}:9: weather.cache_minutes: must be >= 0, got -1" in out
    assert f"{themes}:3: themes.t.category: unknown category 'b'" in out
    assert "unknown placeholder {elem} (hint: did you mean {element}?)" in out
    assert "6 problem(s) found" in out


def test_validate_reports_yaml_syntax_and_missing_explicit_file(
    paths: Paths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("seed: 1\nmodels:\n  base: [unclosed\n")
    assert config_cmd.validate(argparse.Namespace(), AppContext(paths=paths, config_file=broken)) == 1
    assert "invalid YAML" in capsys.readouterr().out
    missing = tmp_path / "missing.yaml"
    assert config_cmd.validate(argparse.Namespace(), AppContext(paths=paths, config_file=missing)) == 1
    assert f"{missing}: file not found" in capsys.readouterr().out


def test_config_cli_exit_codes_and_sample(paths: Paths, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AI_WALLPAPER_CONFIG_DIR": str(paths.config_dir),
        "AI_WALLPAPER_DATA_DIR": str(paths.data_dir),
        "AI_WALLPAPER_CACHE_DIR": str(paths.cache_dir),
        "AI_WALLPAPER_STATE_DIR": str(paths.state_dir),
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: -4\n")
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    (paths.config_dir / "settings.yaml").write_text("models: {base: 'builtin:tiny', upscaler: 'builtin:tiny'}\n")
    code = "import sys; from ai_wallpaper.cli import main; sys.exit(main(sys.argv[1:]))"
    run = [sys.executable, "-c", code]
    sample = subprocess.run([*run, "config", "sample"], capture_output=True, text=True, env=env, check=False)
    assert sample.returncode == 0 and sample.stdout == (REPO / "config" / "settings.yaml").read_text()
    ok = subprocess.run([*run, "config", "validate"], capture_output=True, text=True, env=env, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    failed = subprocess.run(
        [*run, "config", "validate", "--config", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert failed.returncode == 1 and "seed: must be >= 0, got -4" in failed.stdout


def test_config_paths(paths: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    assert config_cmd.show_paths(argparse.Namespace(), AppContext(paths=paths)) == 0
    out = capsys.readouterr().out
    assert f"settings file  {paths.config_dir / 'settings.yaml'}  (absent)" in out
    assert f"themes file    {SHIPPED_CONFIG_DIR / 'themes.yaml'}\n" in out
    assert f"weather cache  {paths.weather_cache_dir}" in out and f"history db     {paths.history_db}" in out


def test_themes_list_and_show(paths: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    from structlog.testing import capture_logs

    ctx = AppContext(paths=paths)
    with capture_logs():  # the tokenizer lookup logs that the default base model is not on disk
        assert themes_cmd.list_themes(argparse.Namespace(category=None, json=False), ctx) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["KEY", "CATEGORY", "WEIGHT", "CHANCE", "TOKENS", "NAME"]
    rows = [ln for ln in lines[1:-1]]
    assert len(rows) >= 40 and any(
        r.startswith("misty_pine_valley") and "Misty Pine Valley" in r for r in rows
    )
    assert "in 11 categor(ies)" in lines[-1] and "~ = approximate token count" in lines[-1]
    assert all(re.search(r"  ~\d+  ", r) for r in rows)  # no tokenizer for the hub base model here
    with capture_logs():
        assert themes_cmd.list_themes(argparse.Namespace(category="cosmos", json=False), ctx) == 0
    cosmos = capsys.readouterr().out.splitlines()[1:-1]
    assert cosmos and all(" cosmos " in r for r in cosmos)
    assert themes_cmd.show_theme(argparse.Namespace(key="ink_mountains", seed=2), ctx) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("ink_mountains: Ink Wash Mountains") and "sample prompt (seed 2" in shown
    with pytest.raises(WallpaperError, match="unknown theme 'ink'"):
        themes_cmd.show_theme(argparse.Namespace(key="ink", seed=0), ctx)
