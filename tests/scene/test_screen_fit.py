"""The base size for the monitors, and the monitors' file names."""

from __future__ import annotations

import pytest

from ai_wallpaper.config.screens import Screen, screen_slugs
from ai_wallpaper.scene.plan import Size
from ai_wallpaper.scene.screen_fit import KEEP_WELL, fit_base_size, kept_share, screen_warnings

DEFAULT = Size(1920, 1024)


def test_a_16_9_monitor_keeps_the_configured_base() -> None:
    fit = fit_base_size([Screen("DP-1", 3840, 2160)], DEFAULT, fixed=False)
    assert fit.base == DEFAULT and not fit.chosen and fit.kept["DP-1"] == pytest.approx(0.948, abs=1e-3)


@pytest.mark.parametrize("screens", [
    [Screen("DP-1", 1080, 1920)],  # portrait
    [Screen("DP-1", 3440, 1440)],  # ultrawide
    [Screen("DP-1", 2560, 1600)],  # 16:10
    [Screen("DP-1", 2560, 1440), Screen("DP-2", 1080, 1920, 2560, 0)],  # landscape + portrait
])
def test_the_base_covers_every_monitor_better_than_the_default(screens: list[Screen]) -> None:
    fit = fit_base_size(screens, DEFAULT, fixed=False)
    before = min(kept_share(s.width, s.height, DEFAULT.width, DEFAULT.height) for s in screens)
    assert fit.chosen and min(fit.kept.values()) > before
    assert fit.base.width % 64 == 0 and fit.base.height % 64 == 0
    pixels = DEFAULT.width * DEFAULT.height
    assert abs(fit.base.width * fit.base.height - pixels) <= 0.08 * pixels
    if len(screens) == 1:
        assert min(fit.kept.values()) >= KEEP_WELL


def test_a_size_the_user_set_wins_and_the_plan_says_what_it_costs() -> None:
    screens = [Screen("DP-1", 1080, 1920)]
    fit = fit_base_size(screens, DEFAULT, fixed=True)
    assert fit.base == DEFAULT and not fit.chosen
    warnings = screen_warnings(screens, fit, 4)
    assert any("shows only 30%" in w and "unset pipeline.txt2img" in w for w in warnings)


def test_a_monitor_bigger_than_the_master_is_warned_about() -> None:
    screens = [Screen("DP-1", 7680, 4320)]
    fit = fit_base_size(screens, Size(1024, 576), fixed=True)
    assert any("upscaled" in w for w in screen_warnings(screens, fit, 4))


def test_slugs_are_safe_unique_and_never_the_single_file() -> None:
    screens = [Screen("DP-1", 10, 10), Screen("dp.1", 10, 10), Screen("4K", 10, 10), Screen("--", 10, 10)]
    assert screen_slugs(screens) == ["dp-1", "dp-1-2", "4k-screen", "screen4"]
