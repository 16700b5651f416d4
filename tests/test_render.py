"""Rendering: fixed scaling, colour map, line ticks, on-disk cache, spectrum figure."""

import io

import numpy as np
import pytest
from PIL import Image

from mlcore.render import (
    VIRIDIS_LUT,
    cutout_rgb,
    line_column,
    render_cutout_png,
    spectrum_window,
    zscale_limits,
)
from mlcore.survey import SPEC_WAVE
from tests.factories import make_survey


def test_png_has_the_documented_layout():
    cut = np.random.default_rng(0).normal(size=(5, 9, 100)).astype(np.float32)
    img = Image.open(io.BytesIO(render_cutout_png(cut)))
    assert img.size == (500, 5 * 54 + 6 * 8)  # 5 px per column, 6 per row, 8 px gaps
    assert img.mode == "RGB"


def test_line_ticks_are_white_at_the_line_column_only():
    cut = np.zeros((5, 9, 100), np.float32)
    rgb = cutout_rgb(cut, line_col=50)
    gap_row = rgb[4]  # inside the first gap, above the summed panel
    white = np.flatnonzero((gap_row == 255).all(axis=1))
    assert white.min() >= 250 and white.max() <= 256
    no_tick = cutout_rgb(cut, line_col=None)
    assert not (no_tick[4] == 255).all(axis=1).any()


def test_fibers_share_one_scale_so_an_offset_fiber_stands_out():
    rng = np.random.default_rng(1)
    cut = rng.normal(size=(5, 9, 100)).astype(np.float32)
    cut[3] += 8.0  # a bad fiber, offset high
    rgb = cutout_rgb(cut, line_col=None)
    panel = lambda k: rgb[8 + k * 62 : 8 + k * 62 + 54]  # noqa: E731
    brightness = [panel(k).astype(float).sum(axis=2).mean() for k in range(1, 5)]
    assert brightness[2] > 1.5 * max(brightness[0], brightness[1], brightness[3])


def test_nan_pixels_render_as_zero_not_crash():
    cut = np.random.default_rng(2).normal(size=(5, 9, 100)).astype(np.float32)
    cut[0, 4, 4] = np.nan
    ref = cut.copy()
    ref[0, 4, 4] = 0
    np.testing.assert_array_equal(cutout_rgb(cut), cutout_rgb(ref))


def test_zscale_of_flat_image_gives_a_valid_range():
    lo, hi = zscale_limits(np.ones((9, 100)))
    assert hi > lo


def test_colour_map_is_viridis_dark_to_bright():
    lum = VIRIDIS_LUT @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(lum) > -1.0)  # monotone in brightness: readable in grey too
    assert tuple(VIRIDIS_LUT[0]) == (68, 1, 84) and tuple(VIRIDIS_LUT[-1]) == (253, 231, 37)


def test_line_column_and_spectrum_window():
    im_wave = 4000 + 2.0 * (np.arange(100) - 50)
    assert line_column(im_wave, 4001.0) == pytest.approx(50.5)
    flux = np.arange(len(SPEC_WAVE), dtype=float)
    win = spectrum_window(SPEC_WAVE, flux, flux * 0 + 1, 4000.0, half_width=10)
    assert win["wave"] == [
        3990.0,
        3992.0,
        3994.0,
        3996.0,
        3998.0,
        4000.0,
        4002.0,
        4004.0,
        4006.0,
        4008.0,
        4010.0,
    ]
    assert win["flux"][5] == 265.0  # (4000 - 3470) / 2


@pytest.mark.django_db
def test_rendering_service_caches_png_on_disk(tmp_path, settings):
    from labelapp.models import Candidate
    from labelapp.services.survey.ingest import ingest_survey
    from labelapp.services.survey.rendering import cutout_png_path, spectrum_figure
    from mlcore.survey_io import write_survey

    ingest_survey(path=write_survey(tmp_path / "s.fits", make_survey(5)))
    cand = Candidate.objects.select_related("batch").first()
    path = cutout_png_path(cand)
    assert path.exists() and path.read_bytes().startswith(b"\x89PNG")
    mtime = path.stat().st_mtime_ns
    assert cutout_png_path(cand) == path and path.stat().st_mtime_ns == mtime  # cached
    fig = spectrum_figure(cand)
    assert [t.get("name") for t in fig["data"]] == [None, "1σ error", "spectrum"]
    assert fig["layout"]["shapes"][0]["x0"] == cand.wave


def test_line_column_uses_only_the_real_columns_of_a_padded_cutout():
    # at the blue CCD edge: 30 padded columns (im_wave 0.0), then the native grid
    native = 3468.0 + 2.006 * np.arange(70) - 2e-6 * np.arange(70) ** 2
    blue = np.concatenate([np.zeros(30), native]).astype(np.float32)
    assert 50.0 < line_column(blue, float(native[20]) + 1.0) < 51.0
    # at the red edge the padding follows the line: interpolating over it gave column 99
    native = 5300.0 + 2.006 * np.arange(70)
    red = np.concatenate([native, np.zeros(30)]).astype(np.float32)
    assert 50.0 < line_column(red, float(native[50]) + 1.0) < 51.0
    assert line_column(np.zeros(100), 4000.0) is None  # no wavelengths: no tick
    assert line_column(blue, 3000.0) is None  # outside the real columns
