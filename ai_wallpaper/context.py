"""What a command needs: the paths and the (lazily loaded, validated) settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ai_wallpaper.errors import ConfigError
from ai_wallpaper.paths import Paths
from ai_wallpaper.schema import Source
from ai_wallpaper.settings import Settings, load_settings


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

    def resolve(self, value: str | None, default: Path) -> Path:
        """A path setting: null -> default; relative -> relative to the settings file's folder."""
        if value is None:
            return default
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.settings_path.parent / p)
