"""`history gallery`: a self-contained, script-free HTML page of real runs, every text escaped."""

from __future__ import annotations

import re
from pathlib import Path

from ai_wallpaper.cli import main
from ai_wallpaper.core.history import History
from ai_wallpaper.core.paths import Paths
from tests.render.test_pipeline import SMALL, write_settings

HOSTILE = 'a lake <script>alert("x")</script> & <img src=x onerror=alert(1)>'


def test_the_gallery_embeds_every_run_and_escapes_what_files_say(paths_with_models: Paths, tmp_path: Path) -> None:
    cfg = write_settings(paths_with_models, {**SMALL, "prompt": HOSTILE})
    out = tmp_path / "run"
    assert main(["generate", "--config", str(cfg), "--no-wallpaper", "--save-stages", "--output", str(out)]) == 0
    history = History(paths_with_models.history_db)
    history.start_run("20261207-000000-badbad", trigger="schedule", plan={"prompt": "</div><b>x"}, run_dir=None)
    history.finish_run("20261207-000000-badbad", status="failed", error="CUDA out of memory <oops>")
    history.record_skipped("20261207-000001-5c1bbe", trigger="schedule", reason="on battery (38%)")
    page_file = tmp_path / "gallery.html"
    assert main(["history", "gallery", "--config", str(cfg), "--output", str(page_file)]) == 0
    page = page_file.read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "<img src=x" not in page
    assert html_escaped(HOSTILE) in page and "&lt;/div&gt;&lt;b&gt;x" in page
    assert "CUDA out of memory &lt;oops&gt;" in page
    images = re.findall(r'<img src="(data:image/jpeg;base64,[A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 4  # the final and the saved stages of the real run, all embedded
    assert "(image gone)" in page  # the failed run has none
    assert not re.search(r'src="(?!data:)', page)  # nothing fetched from anywhere
    assert "default-src 'none'" in page
    assert "on battery" not in page and "(1 skipped ticks not shown)" in page  # a skip made no picture


def html_escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)
