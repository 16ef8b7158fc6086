"""Where the files and folders that settings.yaml names live: one rule for every path setting.

null means the default location (paths.py); `~` expands; a relative path is relative to the folder
of the settings file that names it, never to the current directory (the daemon's is `/`).
"""

from __future__ import annotations

from pathlib import Path

from ai_wallpaper.config.settings import Settings
from ai_wallpaper.core.paths import Paths


def resolve_under(value: str, folder: Path) -> Path:
    """`value` with `~` expanded; a relative path is taken inside `folder`."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else folder / p


def setting_path(value: str | None, default: Path, settings_path: Path) -> Path:
    return default if value is None else resolve_under(value, settings_path.parent)


def themes_file(paths: Paths, settings: Settings, settings_path: Path) -> Path:
    return setting_path(settings.themes.file, paths.user_or_shipped("themes.yaml"), settings_path)


def lora_library_file(paths: Paths, settings: Settings, settings_path: Path) -> Path:
    return setting_path(settings.loras.file or None, paths.user_or_shipped("loras.yaml"), settings_path)


def lora_dir(paths: Paths, settings: Settings, settings_path: Path) -> Path:
    return setting_path(settings.loras.directory or None, paths.lora_dir, settings_path)


def runs_dir(paths: Paths, settings: Settings, settings_path: Path) -> Path:
    return setting_path(settings.output.runs_dir, paths.runs_dir, settings_path)
