"""Every path the program touches, resolved once from env vars and XDG dirs.

Precedence per directory: `AI_WALLPAPER_<NAME>_DIR`, then `$XDG_<NAME>_HOME/ai-wallpaper`, then the
XDG default under `$HOME`. Tests build a `Paths` pointed at `tmp_path` with `Paths.under(root)`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

APP = "ai-wallpaper"
SHIPPED_CONFIG_DIR = Path(__file__).resolve().parents[1] / "default_config"


def _xdg(env_app: str, env_xdg: str, default: str, platform: str = sys.platform) -> Path:
    if value := os.environ.get(env_app):
        return Path(value).expanduser()
    if base := os.environ.get(env_xdg):
        return Path(base).expanduser() / APP
    if platform in ("darwin", "win32"):
        # Not an XDG system: the platform's own folders (~/Library/..., %LOCALAPPDATA%\...) via platformdirs.
        from platformdirs.macos import MacOS
        from platformdirs.windows import Windows

        dirs = (MacOS if platform == "darwin" else Windows)(APP, appauthor=False)
        kind = {".config": "config", ".local/share": "data", ".cache": "cache", ".local/state": "state"}[default]
        return Path(getattr(dirs, f"user_{kind}_dir"))
    return Path.home() / default / APP


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path
    cache_dir: Path
    state_dir: Path

    @classmethod
    def from_env(cls) -> Paths:
        return cls(
            config_dir=_xdg("AI_WALLPAPER_CONFIG_DIR", "XDG_CONFIG_HOME", ".config"),
            data_dir=_xdg("AI_WALLPAPER_DATA_DIR", "XDG_DATA_HOME", ".local/share"),
            cache_dir=_xdg("AI_WALLPAPER_CACHE_DIR", "XDG_CACHE_HOME", ".cache"),
            state_dir=_xdg("AI_WALLPAPER_STATE_DIR", "XDG_STATE_HOME", ".local/state"),
        )

    @classmethod
    def under(cls, root: Path) -> Paths:
        return cls(root / "config", root / "data", root / "cache", root / "state")

    # --- config files: the user's copy wins, else the shipped default -------------------------
    @property
    def settings_file(self) -> Path:
        if value := os.environ.get("AI_WALLPAPER_CONFIG"):
            return Path(value).expanduser()
        return self.config_dir / "settings.yaml"

    def user_or_shipped(self, name: str) -> Path:
        user = self.config_dir / name
        return user if user.exists() else SHIPPED_CONFIG_DIR / name

    # --- data ----------------------------------------------------------------------------------
    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def wallpapers_dir(self) -> Path:
        return self.data_dir / "wallpapers"

    @property
    def lora_dir(self) -> Path:
        return self.data_dir / "loras"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    # --- cache / state -------------------------------------------------------------------------
    @property
    def builtin_models_dir(self) -> Path:
        return self.cache_dir / "builtin-models"

    @property
    def weather_cache_dir(self) -> Path:
        return self.cache_dir / "weather"

    @property
    def history_db(self) -> Path:
        return self.state_dir / "history.sqlite3"

    @property
    def daemon_lock(self) -> Path:
        return self.state_dir / "daemon.lock"

    @property
    def daemon_state(self) -> Path:
        return self.state_dir / "daemon.json"

    @property
    def pause_file(self) -> Path:
        """`ai-wallpaper pause` writes it, `resume` removes it (service/pause.py)."""
        return self.state_dir / "pause.json"

    def run_progress(self, run_id: str) -> Path:
        """The running stage and step of a run (core/progress.py writes it, `status` reads it)."""
        return self.state_dir / "progress" / f"{run_id}.json"
