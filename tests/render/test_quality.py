"""render/quality.py figures on images with known answers and on real photos; the contact sheet's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from ai_wallpaper.render import contact_sheet
from ai_wallpaper.render.quality import (
    WORKING_SIDE,
    Quality,
    enhance_tiles,
    measure,
    quality_score,
    working_rgb,
)
from ai_wallpaper.render.stages.tiling import seam_score


def photo(test_assets: Path, name: str) -> Image.Image:
    with Image.open(test_assets / "scikit-image-0.26.0" / name) as img:
        return img.convert("RGB")


def gray_noise(sigma: float, shape: tuple[int, int] = (576, WORKING_SIDE), seed: int = 0) -> np.ndarray:
    """Mid-grey plus Gaussian noise of `sigma` levels, the same in R, G and B (so luma has that sigma)."""
    plane = 128.0 + np.random.default_rng(seed).normal(0.0, sigma, shape)
    return np.repeat(np.clip(plane.round(), 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def add_noise(img: Image.Image, sigma: float, seed: int = 1) -> Image.Image:
    array = np.asarray(img, dtype=np.float64)
    noisy = array + np.random.default_rng(seed).normal(0.0, sigma, array.shape)
    return Image.fromarray(np.clip(noisy.round(), 0, 255).astype(np.uint8))


def test_flat_gray_has_no_detail_no_contrast_no_colour_and_no_noise() -> None:
    q = measure(np.full((300, 500, 3), 128, np.uint8))
    assert (q.sharpness, q.contrast, q.colorfulness, q.noise, q.seam) == (0.0, 0.0, 0.0, 0.0, None)
    assert quality_score(q) == 0.0


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0, 20.0])
def test_noise_estimate_finds_the_sigma_of_added_gaussian_noise(sigma: float) -> None:
    q = measure(gray_noise(sigma))
    assert q.noise == pytest.approx(sigma, rel=0.15)
    # white noise adds 20 sigma^2 to the Laplacian's variance (what quality_score takes back out)
    assert q.sharpness == pytest.approx(20 * sigma**2, rel=0.1)


def test_noise_estimate_ignores_edges_and_texture(test_assets: Path) -> None:
    """The median-based estimate reads a clean photo as nearly noise-free, and adding noise raises
    it by about what was added (luma sigma of independent RGB noise s is 0.668 s)."""
    img = photo(test_assets, "astronaut.png")
    clean = measure(img).noise
    assert clean < 2.0
    assert measure(add_noise(img, 9.0)).noise == pytest.approx(np.hypot(clean, 0.668 * 9.0), rel=0.15)


def test_contrast_and_colorfulness_known_values() -> None:
    halves = np.zeros((64, 128, 3), np.uint8)
    halves[:, 64:] = 255  # half black, half white: luma std = 0.5 of full scale
    assert measure(halves).contrast == pytest.approx(0.5)
    red = np.zeros((32, 32, 3), np.uint8)
    red[:, :, 0] = 255  # uniform pure red: no spread; 0.3 * |(rg, yb) mean| = 0.3 * hypot(255, 127.5)
    assert measure(red).colorfulness == pytest.approx(0.3 * np.hypot(255, 127.5))
    assert measure(red).contrast == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ["chelsea.png", "astronaut.png"])
def test_a_blurred_copy_is_less_sharp(test_assets: Path, name: str) -> None:
    img = photo(test_assets, name)
    sharp, soft = measure(img), measure(img.filter(ImageFilter.GaussianBlur(1.5)))
    assert soft.sharpness < sharp.sharpness / 4
    assert soft.colorfulness == pytest.approx(sharp.colorfulness, rel=0.1)  # blur keeps the colours


@pytest.mark.parametrize("name", ["chelsea.png", "astronaut.png"])
def test_score_prefers_the_sharp_clean_photo_to_a_blurred_and_a_noisy_copy(test_assets: Path, name: str) -> None:
    img = photo(test_assets, name)
    clean = measure(img)
    blurred = measure(img.filter(ImageFilter.GaussianBlur(1.5)))
    noisy = measure(add_noise(img, 8.0))
    assert noisy.sharpness > clean.sharpness  # noise alone would pass for detail...
    assert quality_score(clean) > quality_score(noisy)  # ...the score sees through it
    assert quality_score(clean) > quality_score(blurred)


def test_figures_are_measured_at_the_working_size() -> None:
    """A large image is reduced to WORKING_SIDE on its long side; a small one is not enlarged."""
    assert working_rgb(np.zeros((2160, 3840, 3), np.uint8)).shape == (576, WORKING_SIDE, 3)
    assert working_rgb(np.zeros((300, 451, 3), np.uint8)).shape == (300, 451, 3)
    # the same scene at 2x and 4x the working size reads (nearly) the same
    base = np.asarray(Image.fromarray(gray_noise(12.0, (256, 512))).filter(ImageFilter.GaussianBlur(3)))
    big = [Image.fromarray(base).resize((WORKING_SIDE * k, WORKING_SIDE * k // 2), Image.Resampling.BICUBIC)
           for k in (2, 4)]
    a, b = (measure(img) for img in big)
    assert a.contrast == pytest.approx(b.contrast, rel=0.05)
    assert a.sharpness == pytest.approx(b.sharpness, rel=0.25)


def test_seam_comes_from_the_tiling_metric_on_the_enhancement_tiles() -> None:
    tiles = enhance_tiles(512, 256, tile=256, overlap=64)
    assert [(t.x, t.w) for t in tiles] == [(0, 256), (128, 256), (256, 256)]  # spread evenly, last at the edge
    smooth = gray_noise(6.0, (256, 512))
    stepped = smooth.copy()
    stepped[:, 256:] = np.clip(stepped[:, 256:].astype(int) + 12, 0, 255).astype(np.uint8)  # a tile-edge step
    clean, seamed = measure(smooth, tiles=tiles), measure(stepped, tiles=tiles)
    luma = np.asarray(Image.fromarray(stepped).convert("L"))
    assert seamed.seam == pytest.approx(seam_score(luma, tiles))
    assert clean.seam is not None and seamed.seam is not None and seamed.seam > 3 * clean.seam
    assert measure(smooth, tiles=enhance_tiles(256, 256, tile=256, overlap=64)).seam is None  # one tile: no seams


def test_to_json_rounds_and_names_every_figure() -> None:
    q = Quality(sharpness=123.456789, contrast=0.123456, colorfulness=33.33333, noise=1.23456, seam=1.0123456)
    figures = q.to_json()
    assert figures == {"sharpness": 123.46, "contrast": 0.1235, "colorfulness": 33.33, "noise": 1.235,
                       "score": round(quality_score(q), 3), "seam": 1.0123}
    assert "seam" not in Quality(1.0, 0.1, 2.0, 0.5).to_json()


def test_contact_sheet_layout_and_crops(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    files = []
    for name, (w, h) in {"small": (200, 100), "large": (1600, 800)}.items():
        file = tmp_path / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(file)
        files.append(contact_sheet.SheetEntry(name, file, {"sharpness": 1.0, "score": 2.0}))
    target = contact_sheet.write(tmp_path, files)
    assert target.name == contact_sheet.CONTACT_SHEET
    c = contact_sheet
    with Image.open(target) as opened:
        sheet = np.asarray(opened.convert("RGB"))
    assert sheet.shape[:2] == (2 * c.MARGIN + c.THUMB_HEIGHT + c.THUMB_LINES * c.LINE_HEIGHT + c.GAP + c.CROP
                               + c.CROP_LINES * c.LINE_HEIGHT,
                               2 * c.MARGIN + max(480, c.CROP) + c.GAP + max(480, c.CROP))
    # the large image's crop is its centre at 1:1, in the second column under the thumbnails
    with Image.open(files[1].file) as img:
        centre = np.asarray(img)[400 - c.CROP // 2:400 + c.CROP // 2, 800 - c.CROP // 2:800 + c.CROP // 2]
    top, left = c.MARGIN + c.THUMB_HEIGHT + c.THUMB_LINES * c.LINE_HEIGHT + c.GAP, c.MARGIN + max(480, c.CROP) + c.GAP
    assert np.array_equal(sheet[top:top + c.CROP, left:left + c.CROP], centre)
    # the small one is smaller than a crop cell: all of it, at the cell's top-left
    with Image.open(files[0].file) as img:
        assert np.array_equal(sheet[top:top + 100, c.MARGIN:c.MARGIN + 200], np.asarray(img))
