"""What a command needs: the paths and the (lazily loaded, validated) settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ai_wallpaper.config.locations import setting_path
from ai_wallpaper.config.schema import Source
from ai_wallpaper.config.screens import Screen
from ai_wallpaper.config.settings import Settings, load_settings
from ai_wallpaper.core.errors import ConfigError
from ai_wallpaper.core.paths import Paths


@dataclass
class AppContext:
    paths: Paths
    config_file: Path | None = None  # --config; None = paths.settings_file
    _settings: tuple[Settings, Source] | None = field(default=None, repr=False)

    @property
    def settings_path(self) -> Path:
        return self.config_file or self.paths.settings_file

    @property
    def explicit_config(self) -> bool:
        """The user named the settings file (--config or $AI_WALLPAPER_CONFIG): it must exist."""
        return self.config_file is not None or bool(os.environ.get("AI_WALLPAPER_CONFIG"))

    def load(self) -> tuple[Settings, Source]:
        if self._settings is None:
            path = self.settings_path
            if path.exists():
                self._settings = load_settings(path)
            elif self.explicit_config:
                raise ConfigError(f"{path}: file not found",
                                  hint="create it (`ai-wallpaper config sample > FILE`), or name another file")
            else:
                self._settings = load_settings(None)
        return self._settings

    @property
    def settings(self) -> Settings:
        return self.load()[0]

    def plan_screens(self, settings: Settings) -> tuple[tuple[Screen, ...], bool]:
        """The monitors to cut pictures for, and whether the user fixed the base size (which then wins)."""
        import shutil

        from ai_wallpaper.desktop.detect import running_processes
        from ai_wallpaper.desktop.monitors import screens_for_plan

        screens = screens_for_plan(settings.desktop, os.environ, which=shutil.which, processes=running_processes)
        source = self.load()[1]
        fixed = any(("pipeline", "txt2img", key) in source.lines for key in ("width", "height"))
        return screens, fixed

    def resolve(self, value: str | None, default: Path) -> Path:
        """A path setting (config/locations.py's rule)."""
        return setting_path(value, default, self.settings_path)
