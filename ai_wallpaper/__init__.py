"""ai-wallpaper: paints a new desktop wallpaper on a schedule."""

from __future__ import annotations

__version__ = "0.1.0"
