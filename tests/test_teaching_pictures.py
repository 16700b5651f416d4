"""Teaching pictures show what their text says (issue 28): measured on the pixels, both in
synthetic cutouts (mlcore.teaching) and in the field guide's rendered PNGs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from labelapp.services.crowd import field_guide as guide
from mlcore.render import VIRIDIS_LUT
from mlcore.survey import CUTOUT_COLS, CUTOUT_ROWS, LINE_COL
from mlcore.teaching import measure, teaching_check

PX_COL, PX_ROW, GAP = 5, 6, 8  # mlcore.render.cutout_rgb's defaults


def _noise(seed=0):
    return np.random.default_rng(seed).normal(0, 1, (5, CUTOUT_ROWS, CUTOUT_COLS))


def test_a_cosmic_ray_shows_in_exactly_one_fiber():
    cut = _noise()
    cut[0, 4, LINE_COL] += 12  # the summed strip
    cut[2, 4, LINE_COL] += 12  # fiber 2 only
    check = teaching_check("cosmic", cut)
    assert check.shows and check.numbers["fiber_peak"][1] > 10, check.why
    masked = cut.copy()
    masked[2, 4, LINE_COL] -= 12  # the pipeline zeroed the hit in its fiber: sum only
    assert not teaching_check("cosmic", masked).shows
    twice = cut.copy()
    twice[3, 4, LINE_COL] += 12  # in two fibers: not what the text says
    assert not teaching_check("cosmic", twice).shows


def test_a_sky_stripe_must_run_through_every_fiber():
    cut = _noise(1)
    cut[:, :, LINE_COL] += 2.5  # each pixel of the column +2.5 sigma: 7.5 sigma per fiber
    check = teaching_check("sky", cut, strict=True)
    assert check.shows and min(check.numbers["column_sn"]) > 5, check.why
    faint = _noise(1)
    faint[:, :, LINE_COL] += 0.3  # lost in the noise
    assert not teaching_check("sky", faint).shows
    partial = cut.copy()
    partial[3, :, LINE_COL] -= 2.5  # missing from one fiber
    assert not teaching_check("sky", partial).shows


def test_an_oii_blob_is_not_a_continuum_band():
    blob = _noise(2)
    blob[:, 3:6, LINE_COL - 2 : LINE_COL + 3] += 3.0
    assert teaching_check("oii", blob).shows
    band = _noise(2)
    band[:, 3:6, :] += 1.5  # a star's continuum along the whole strip
    band[:, 3:6, LINE_COL - 2 : LINE_COL + 3] += 0.5
    check = teaching_check("oii", band)
    assert not check.shows and check.numbers["band_sn"] > 2 * check.numbers["sum_sn"] / 2


def _rendered(png: bytes) -> np.ndarray:
    """The (5, 9, 100) panel values back out of a rendered PNG: each cell's centre pixel,
    as its position on the viridis scale (0-255), i.e. what a volunteer sees."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int32)
    panel_h = CUTOUT_ROWS * PX_ROW
    out = np.zeros((5, CUTOUT_ROWS, CUTOUT_COLS))
    for k in range(5):
        top = GAP + k * (panel_h + GAP)
        ys = top + PX_ROW * np.arange(CUTOUT_ROWS) + PX_ROW // 2
        xs = PX_COL * np.arange(CUTOUT_COLS) + PX_COL // 2
        cells = rgb[ys][:, xs]  # (9, 100, 3)
        dist = ((cells[:, :, None, :] - VIRIDIS_LUT[None, None]) ** 2).sum(-1)
        out[k] = dist.argmin(-1)
    return out


@pytest.fixture
def built_guide(settings, tmp_path):
    settings.RENDER_CACHE_DIR = str(tmp_path)
    return {e["kind"]: e for e in guide.build_field_guide()}


def test_field_guide_pictures_show_their_text(built_guide):
    """Each example was chosen because its cutout shows its text (the numbers kept in the
    guide), and the rendered PNG a volunteer sees still shows it: measured on the colours,
    in units of the picture's own noise (zscale clips the brightest pixels, so a dot that
    is 30 sigma in the data is ~6 in the picture)."""
    assert set(built_guide) == {k for k, _, _ in guide.KINDS}
    for kind, entry in built_guide.items():
        assert entry["measured"] and entry["shows"], kind
    raw = {k: built_guide[k]["measured"] for k in ("cosmic", "sky", "oii")}
    peaks = sorted(raw["cosmic"]["fiber_peak"], reverse=True)
    assert peaks[0] >= 8 and peaks[1] < 4  # one fiber row, and one only
    assert min(raw["sky"]["column_sn"]) >= 5  # the stripe, clear in every fiber
    assert raw["oii"]["sum_sn"] >= 2 * max(raw["oii"]["band_sn"], 0)  # a blob, not a band
    assert sum(s >= 3 for s in raw["oii"]["fiber_sum"]) >= 2  # shared by several fibers

    seen = {
        kind: measure(_rendered(guide.field_guide_png(kind).read_bytes()))
        for kind in ("cosmic", "sky", "oii")
    }
    peaks = seen["cosmic"]["fiber_peak"]
    bright = [k for k, p in enumerate(peaks) if p >= 5]
    assert len(bright) == 1 and max(p for k, p in enumerate(peaks) if k != bright[0]) < 4
    assert seen["cosmic"]["sum_peak"] >= 5  # and in the summed strip
    assert min(seen["sky"]["column_sn"]) >= 3  # the stripe stands out in every fiber row
    assert seen["oii"]["sum_sn"] >= 5
    assert sum(s >= 3 for s in seen["oii"]["fiber_sum"]) >= 2
    assert "one fiber only" in built_guide["cosmic"]["text"]
