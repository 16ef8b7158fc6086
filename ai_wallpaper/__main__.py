from __future__ import annotations

import sys

from ai_wallpaper.cli import main

sys.exit(main())
