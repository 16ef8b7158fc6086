"""Downsample stage: cover-scale + crop geometry, anchors, and "a circle stays a circle"."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ai_wallpaper.config.settings import Settings
from ai_wallpaper.config.vocabulary import ANCHORS
from ai_wallpaper.render.stages.downsample import DownsampleConfig, cover_crop_box, run_downsample


def config(width: int, height: int, anchor: str = "center") -> DownsampleConfig:
    return dataclasses.replace(DownsampleConfig.from_settings(Settings()), width=width, height=height, anchor=anchor)


def scales(box: tuple[float, float, float, float], dst_w: int, dst_h: int) -> tuple[float, float]:
    left, top, right, bottom = box
    return dst_w / (right - left), dst_h / (bottom - top)


def disc_image(w: int, h: int, diameter: int, centre: tuple[float, float] | None = None) -> Image.Image:
    image = Image.new("L", (w, h), 0)
    cx, cy = centre or (w / 2, h / 2)
    r = diameter / 2
    ImageDraw.Draw(image).ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    return image.convert("RGB")


def disc_extent(image: Image.Image) -> tuple[int, int]:
    """Width and height of the bright disc, counting pixels above half intensity."""
    bright = np.asarray(image.convert("L")) >= 128
    cols, rows = np.flatnonzero(bright.any(axis=0)), np.flatnonzero(bright.any(axis=1))
    return int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def test_8k_to_4k_geometry_is_uniform_and_centred() -> None:
    box = cover_crop_box(7680, 4096, 3840, 2160, "center")
    sx, sy = scales(box, 3840, 2160)
    assert sx == pytest.approx(sy, rel=1e-12)  # one factor: no distortion
    assert sy == pytest.approx(2160 / 4096)  # height is the limiting side (1.875 > 1.778)
    left, top, right, bottom = box
    assert (top, bottom) == (0.0, 4096.0)
    assert right - left == pytest.approx(4096 * 3840 / 2160)  # 7281.78 px of 7680 kept
    assert left == pytest.approx(7680 - right)  # symmetric crop
    assert left == pytest.approx(199.111, abs=1e-3)


@pytest.mark.parametrize("anchor", ANCHORS)
@pytest.mark.parametrize(("src", "dst"), [((7680, 4096), (3840, 2160)), ((1000, 1000), (800, 400)),
                                          ((960, 512), (3840, 2160))])
def test_every_anchor_keeps_the_scale_uniform_and_the_box_inside(anchor: str, src: tuple[int, int],
                                                                 dst: tuple[int, int]) -> None:
    box = cover_crop_box(*src, *dst, anchor)
    sx, sy = scales(box, *dst)
    assert sx == pytest.approx(sy, rel=1e-12)
    left, top, right, bottom = box
    assert 0 <= left <= right <= src[0] + 1e-9 and 0 <= top <= bottom <= src[1] + 1e-9
    assert right - left == pytest.approx(src[0]) or bottom - top == pytest.approx(src[1])  # covers


@pytest.mark.parametrize(("anchor", "expected_left"), [
    ("left", 0.0), ("top-left", 0.0), ("bottom-left", 0.0),
    ("right", 7680 - 4096 * 3840 / 2160), ("top-right", 7680 - 4096 * 3840 / 2160),
    ("center", (7680 - 4096 * 3840 / 2160) / 2), ("top", (7680 - 4096 * 3840 / 2160) / 2),
])
def test_anchors_move_a_horizontal_crop(anchor: str, expected_left: float) -> None:
    left, top, _, _ = cover_crop_box(7680, 4096, 3840, 2160, anchor)
    assert left == pytest.approx(expected_left)
    assert top == 0.0  # nothing to crop vertically


@pytest.mark.parametrize(("anchor", "expected_top"), [
    ("top", 0.0), ("top-right", 0.0), ("center", 250.0), ("left", 250.0), ("bottom", 500.0),
    ("bottom-left", 500.0),
])
def test_anchors_move_a_vertical_crop(anchor: str, expected_top: float) -> None:
    # 1000x1000 -> 800x400: scale 0.8, keep a 1000x500 band.
    left, top, right, bottom = cover_crop_box(1000, 1000, 800, 400, anchor)
    assert (left, right) == (0.0, 1000.0)
    assert top == pytest.approx(expected_top)
    assert bottom - top == pytest.approx(500.0)


def test_anchor_decides_which_edge_survives() -> None:
    # A red stripe along the source's left edge: kept with anchor left, cropped away with right.
    source = Image.new("RGB", (1920, 1024), (0, 0, 255))
    ImageDraw.Draw(source).rectangle((0, 0, 60, 1023), fill=(255, 0, 0))
    kept = np.asarray(run_downsample(source, config(960, 540, "left")))
    gone = np.asarray(run_downsample(source, config(960, 540, "right")))
    assert kept[270, 5, 0] > 240 and kept[270, 5, 2] < 15
    assert gone[:, :, 0].max() < 15  # no red anywhere


def test_a_circle_stays_a_circle_at_full_size() -> None:
    source = disc_image(7680, 4096, 1600)
    out = run_downsample(source, config(3840, 2160, "center"))
    assert out.size == (3840, 2160)
    width, height = disc_extent(out)
    expected = 1600 * 2160 / 4096  # 843.75 px
    assert abs(width - height) <= 2
    assert abs(width - expected) <= 3 and abs(height - expected) <= 3
    # Centred crop: the disc stays in the middle.
    bright = np.asarray(out.convert("L")) >= 128
    cols, rows = np.flatnonzero(bright.any(axis=0)), np.flatnonzero(bright.any(axis=1))
    assert abs((cols[0] + cols[-1]) / 2 - 1919.5) <= 1.5 and abs((rows[0] + rows[-1]) / 2 - 1079.5) <= 1.5


def test_would_fail_if_the_image_were_stretched() -> None:
    # Same aspect ratios as 8K -> 4K at a quarter of the size. A plain resize squashes x by 5 %.
    source = disc_image(1920, 1024, 600)
    ours = disc_extent(run_downsample(source, config(960, 540)))
    stretched = disc_extent(source.resize((960, 540), Image.Resampling.LANCZOS))
    assert abs(ours[0] - ours[1]) <= 1
    assert stretched[1] - stretched[0] >= 12  # the metric does see a stretch (300x316 px)


def test_upscaling_direction_is_cover_and_crop_too() -> None:
    source = disc_image(960, 512, 200)
    out = run_downsample(source, config(3840, 2160))
    assert out.size == (3840, 2160)
    width, height = disc_extent(out)
    # PIL draws the 200 px disc with inclusive bounds (201 px), hence the 6 px allowance.
    assert abs(width - height) <= 2 and abs(width - 200 * 2160 / 512) <= 6


def test_matching_size_passes_through_untouched() -> None:
    source = disc_image(640, 360, 100)
    assert run_downsample(source, config(640, 360)) is source


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"width": 0}, r"output\.width: must be >= 64, got 0"),
    ({"height": 2.5}, r"output\.height: must be an integer, got 2\.5"),
    ({"anchor": "middle"}, r"output\.anchor: must be one of center, top"),
])
def test_config_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(DownsampleConfig.from_settings(Settings()), **kwargs)


def test_config_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as err:
        DownsampleConfig(width=0, height=99999, anchor="middle")  # type: ignore[arg-type]
    assert [line.split(":")[0].strip(" -") for line in str(err.value).splitlines()[1:]] == [
        "output.width", "output.height", "output.anchor"]


def test_config_comes_from_the_output_settings() -> None:
    o = Settings().output
    assert DownsampleConfig.from_settings(Settings()) == DownsampleConfig(width=o.width, height=o.height,
                                                                          anchor=o.anchor)


def test_cover_crop_box_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="sizes must be positive"):
        cover_crop_box(0, 10, 10, 10)
    with pytest.raises(ValueError, match="anchor must be one of"):
        cover_crop_box(10, 10, 10, 10, "nowhere")
