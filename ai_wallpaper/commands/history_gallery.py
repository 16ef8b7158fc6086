"""`ai-wallpaper history gallery`: one self-contained HTML page of the recent runs, to look back at.

Every picture is embedded as a small JPEG (data: URI), so the page needs no server and no other file,
and it can be mailed or moved. Every text (prompts, theme names, errors: all user- or file-controlled)
is HTML-escaped; the page has no script. It is written atomically and opened by nothing.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from ai_wallpaper.core.history import RunRecord
from ai_wallpaper.render.run_record import STAGE_FILES

THUMB_PX = 480  # the final image's width on the page
STAGE_THUMB_PX = 160
STYLE = """body{font:14px system-ui,sans-serif;background:#111;color:#ddd;margin:24px}
.run{display:flex;gap:16px;padding:12px 0;border-bottom:1px solid #333}.run img{border-radius:4px}
.meta{max-width:760px}.meta b{color:#fff}.bad{color:#f77}.stages img{margin-right:4px}
.prompt{color:#bbb;white-space:pre-wrap}table{border-collapse:collapse}td{padding:0 8px 0 0}"""


def thumbnail(path: Path, width: int) -> str | None:
    """A data: URI of `path` as a JPEG `width` px wide, or None if it is not a readable image."""
    from PIL import Image

    try:
        with Image.open(path) as src:
            src.draft("RGB", (width, width))  # JPEGs decode at a reduced size directly
            small = src.convert("RGB")
        small.thumbnail((width, width * 4))
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=82)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _image(uri: str | None, alt: str, width: int) -> str:
    if uri is None:
        return f'<div style="width:{width}px">(image gone)</div>'
    return f'<img src="{uri}" width="{width}" alt="{_text(alt)}">'


def run_html(run: RunRecord) -> str:
    plan = run.plan or {}
    theme = plan.get("theme") or {}
    mood = plan.get("mood") or {}
    loras = ", ".join(f"{lo.get('name')} {lo.get('weight', 0):.2f}" for lo in plan.get("loras") or []
                      if isinstance(lo, dict)) or "none"
    final = run.wallpaper or run.outputs.get("final")
    main = _image(thumbnail(Path(final), THUMB_PX) if final else None, f"run {run.run_id}", THUMB_PX)
    stages = "".join(_image(thumbnail(Path(run.outputs[s]), STAGE_THUMB_PX), s, STAGE_THUMB_PX)
                     for s in STAGE_FILES if s in run.outputs and s != "final")
    timings = "".join(f"<tr><td>{_text(stage)}</td><td>{seconds:.1f} s</td></tr>"
                      for stage, seconds in run.timings.items())
    status = f'<span class="bad">{_text(run.status)}</span>' if run.status != "success" else "success"
    error = f'<div class="bad">{_text(run.error)}</div>' if run.error else ""
    return (f'<div class="run">{main}<div class="meta"><b>{_text(run.run_id)}</b>'
            f"{' &#9733;' if run.favorite else ''} &middot; {run.started_at.astimezone():%Y-%m-%d %H:%M} &middot; "
            f"{_text(run.trigger)} &middot; {status}<br>"
            f"theme: {_text(theme.get('name') or theme.get('key') or 'none (fixed prompt)')} &middot; "
            f"mood: {_text(mood.get('description') or '-')} &middot; LoRAs: {_text(loras)}"
            f'<div class="prompt">{_text(plan.get("prompt") or "")}</div>{error}'
            f'<div class="stages">{stages}</div><table>{timings}</table></div></div>')


def page(runs: list[RunRecord]) -> str:
    """Skipped ticks (paused, on battery, ...) made no picture: counted in the title, not shown."""
    shown = [r for r in runs if r.status != "skipped"]
    skipped = f" ({len(runs) - len(shown)} skipped ticks not shown)" if len(shown) < len(runs) else ""
    body = "\n".join(run_html(r) for r in shown) or "<p>no runs yet</p>"
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
            f"style-src 'unsafe-inline'\"><title>ai-wallpaper history</title><style>{STYLE}</style></head>"
            f"<body><h1>ai-wallpaper: the last {len(shown)} runs{skipped}</h1>\n{body}\n</body></html>\n")
