"""`--json`: one JSON document on stdout, one shape per command family (README, "JSON output").

- A family about many things prints an object whose key names the things, holding a list, plus facts
  about the whole list beside it: `history` and `history show` print {"runs": [...]} (show: a list of
  one, each run with its stages), `themes list` {"themes": [...]}, `loras list` {"loras": [...], "file":
  ...}.
- A family about one thing prints that thing's object: `plan` and `generate --dry-run` the plan,
  `doctor` its report, `status` the daemon, its current run and the last run.

Always one document (never JSON lines), indented, no NaN: `json.load` reads every command's output.
"""

from __future__ import annotations

import json
from typing import Any

from ai_wallpaper.core.history import RunRecord


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, allow_nan=False, default=str)


def emit(document: dict[str, Any]) -> None:
    print(dumps(document))


def run_json(r: RunRecord) -> dict[str, Any]:
    """A history row: the fields every command of the history family gives for a run."""
    return {"run_id": r.run_id, "trigger": r.trigger, "status": r.status, "started_at": r.started_at.isoformat(),
            "finished_at": r.finished_at.isoformat() if r.finished_at else None, "duration_s": r.duration_s,
            "theme": r.theme_key, "favorite": r.favorite, "wallpaper": r.wallpaper, "error": r.error,
            "timings": r.timings, "outputs": r.outputs}
