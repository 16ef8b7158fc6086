"""contact_sheet.png: every stage of a run on one page, with a 100% crop of each and its figures.

One column per stage, in run order: the whole image scaled to a common height (`THUMB_HEIGHT`)
with the stage's name, size and quality figures under it, then a crop at native resolution (one
image pixel = one sheet pixel) of the same relative spot of each stage (the centre by default),
mapped into that stage's own pixel grid. The thumbnails show composition and tone from stage to
stage; the crops show what each stage did to the pixels, which no downscaled view can.
Written only with --save-stages (it is made from the saved stage files).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ai_wallpaper.core import atomic, log
from ai_wallpaper.render.run_record import STAGE_FILES, StageRecord

if TYPE_CHECKING:
    from PIL import Image, ImageDraw

logger = log.get(__name__)
CONTACT_SHEET = "contact_sheet.png"
THUMB_HEIGHT = 240  # every stage scaled to this height, whatever its size
CROP = 320  # side of the 100% crop cell; a smaller image gives a smaller crop, top-left in its cell
MARGIN = 8
GAP = 8  # between columns, and between a column's thumbnail block and its crop block
LINE_HEIGHT = 14  # Pillow's default font is 10 px
THUMB_LINES = 4  # name and size; sharpness and noise; contrast and colorfulness; score and seam
CROP_LINES = 1
BACKGROUND = (24, 24, 24)
INK = (230, 230, 230)


@dataclass(frozen=True)
class SheetEntry:
    """One column: a stage's name, its image file and its recorded figures (None: none recorded)."""

    stage: str
    file: Path
    figures: Mapping[str, float] | None = None


def stage_entries(folder: Path, stages: Mapping[str, StageRecord]) -> list[SheetEntry]:
    """The completed stages whose image is in `folder`, in run order (skipped stages have none)."""
    entries = []
    for stage, name in STAGE_FILES.items():
        record = stages.get(stage)
        if record is None or record.status != "done" or record.file is None:
            continue
        if not (folder / name).is_file():
            logger.warning("contact sheet: stage image missing, left out", stage=stage, file=str(folder / name))
            continue
        entries.append(SheetEntry(stage, folder / name, record.quality))
    return entries


@dataclass(frozen=True)
class Column:
    x: int  # left edge on the sheet
    width: int
    thumb: tuple[int, int]  # thumbnail (w, h)
    crop: tuple[int, int, int, int]  # (left, top, right, bottom) in the stage's own pixels


def thumb_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    return max(1, round(width * THUMB_HEIGHT / height)), THUMB_HEIGHT


def crop_box(size: tuple[int, int], spot: tuple[float, float] = (0.5, 0.5)) -> tuple[int, int, int, int]:
    """A CROP x CROP box (smaller if the image is) centred on `spot` (relative x, y in 0..1),
    moved inside the image where it would stick out."""
    width, height = size
    w, h = min(CROP, width), min(CROP, height)
    left = min(max(round(spot[0] * width - w / 2), 0), width - w)
    top = min(max(round(spot[1] * height - h / 2), 0), height - h)
    return left, top, left + w, top + h


def layout(sizes: Sequence[tuple[int, int]], spot: tuple[float, float] = (0.5, 0.5)
           ) -> tuple[tuple[int, int], list[Column]]:
    """The sheet's (width, height) and one column per image size."""
    columns: list[Column] = []
    x = MARGIN
    for size in sizes:
        thumb = thumb_size(size)
        width = max(thumb[0], CROP)
        columns.append(Column(x, width, thumb, crop_box(size, spot)))
        x += width + GAP
    sheet_width = x - GAP + MARGIN if columns else 2 * MARGIN
    sheet_height = (2 * MARGIN + THUMB_HEIGHT + THUMB_LINES * LINE_HEIGHT + GAP
                    + CROP + CROP_LINES * LINE_HEIGHT)
    return (sheet_width, sheet_height), columns


def label_lines(entry: SheetEntry, size: tuple[int, int]) -> list[str]:
    """The text under a thumbnail: at most THUMB_LINES lines."""
    lines = [f"{entry.stage}  {size[0]}x{size[1]}"]
    f = entry.figures
    if f:
        lines.append(f"sharpness {f.get('sharpness', 0):.1f}  noise {f.get('noise', 0):.2f}")
        lines.append(f"contrast {f.get('contrast', 0):.3f}  colorfulness {f.get('colorfulness', 0):.1f}")
        last = f"score {f.get('score', 0):.2f}"
        if "seam" in f:
            last += f"  seam {f['seam']:.3f}"
        lines.append(last)
    return lines[:THUMB_LINES]


def render(entries: Sequence[SheetEntry], spot: tuple[float, float] = (0.5, 0.5)) -> Image.Image:
    """The sheet. Opens one stage image at a time (an 8K RGB image is ~100 MB)."""
    from PIL import Image, ImageDraw

    sizes = []
    for entry in entries:
        with Image.open(entry.file) as header:  # reads the size only
            sizes.append(header.size)
    (width, height), columns = layout(sizes, spot)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    crop_top = MARGIN + THUMB_HEIGHT + THUMB_LINES * LINE_HEIGHT + GAP
    for entry, column, size in zip(entries, columns, sizes, strict=True):
        with Image.open(entry.file) as opened:
            img = opened.convert("RGB")
        sheet.paste(img.resize(column.thumb, Image.Resampling.LANCZOS, reducing_gap=3.0), (column.x, MARGIN))
        sheet.paste(img.crop(column.crop), (column.x, crop_top))
        del img
        _text(draw, label_lines(entry, size), column.x, MARGIN + THUMB_HEIGHT)
        left, top, right, bottom = column.crop
        _text(draw, [f"100% crop {right - left}x{bottom - top} at ({left}, {top})"], column.x, crop_top + CROP)
    return sheet


def _text(draw: ImageDraw.ImageDraw, lines: Sequence[str], x: int, y: int) -> None:
    for i, line in enumerate(lines):
        draw.text((x, y + 2 + i * LINE_HEIGHT), line, fill=INK)


def write(folder: Path, entries: Sequence[SheetEntry], spot: tuple[float, float] = (0.5, 0.5)) -> Path:
    """Render the sheet and save it atomically as folder/contact_sheet.png."""
    sheet = render(entries, spot)
    target = folder / CONTACT_SHEET
    atomic.write_with(target, lambda fh: sheet.save(fh, format="PNG", compress_level=6))
    return target
