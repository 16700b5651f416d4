"""The classify page's image tools: stretch and colour map of the cutout PNG (server-side,
cached per view), and a 400 that says what is allowed for anything else."""

import io

import numpy as np
import pytest
from PIL import Image

from mlcore.render import (
    CIVIDIS_LUT,
    COLOUR_MAPS,
    STRETCHES,
    VIRIDIS_LUT,
    apply_stretch,
    check_view,
    cutout_rgb,
    render_cutout_png,
)
from tests.factories import make_survey


def test_every_stretch_is_monotonic_and_keeps_the_ends():
    x = np.linspace(0, 1, 101)
    for s in STRETCHES:
        y = apply_stretch(x, s)
        assert y[0] == pytest.approx(0) and y[-1] == pytest.approx(1), s
        assert np.all(np.diff(y) >= 0), s


def test_nonlinear_stretches_lift_faint_values():
    faint = np.array([0.05])
    lin = apply_stretch(faint, "linear")[0]
    for s in ("asinh", "log", "sqrt"):
        assert apply_stretch(faint, s)[0] > 2 * lin, s


def test_cividis_is_matplotlibs_blue_to_yellow_and_monotonic_in_lightness():
    assert tuple(CIVIDIS_LUT[0]) == (0, 34, 78) and tuple(CIVIDIS_LUT[-1]) == (254, 232, 56)
    lum = CIVIDIS_LUT @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(lum) > -0.5)  # readable in grey: lightness never goes back
    assert set(COLOUR_MAPS) == {"viridis", "cividis", "grey"}


def test_stretch_and_cmap_change_the_picture_but_not_its_layout():
    cut = np.random.default_rng(0).normal(size=(5, 9, 100)).astype(np.float32)
    base = cutout_rgb(cut)
    asinh = cutout_rgb(cut, stretch="asinh")
    civ = cutout_rgb(cut, cmap="cividis")
    grey = cutout_rgb(cut, cmap="grey")
    assert base.shape == asinh.shape == civ.shape == grey.shape
    assert not np.array_equal(asinh, base) and not np.array_equal(civ, base)
    g = grey[8 : 8 + 54]
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
    # the default view is the one that existed before the tools: viridis, linear
    pix = base[8 + 3, 3]
    assert any((pix == row).all() for row in VIRIDIS_LUT)


def test_nonlinear_views_keep_the_shape_of_what_linear_clips():
    """zscale clips a cosmic ray's core and its wing to the same top colour; asinh, running
    from the sky to the brightest pixel, keeps them apart, and keeps the sky dark."""
    cut = np.random.default_rng(3).normal(size=(5, 9, 100)).astype(np.float32)
    cut[0, 4, 50], cut[0, 4, 51] = 60.0, 25.0  # core and wing, both far above the noise
    grey = {s: cutout_rgb(cut, stretch=s, cmap="grey", line_col=None) for s in STRETCHES}
    core = (8 + 4 * 6 + 3, 50 * 5 + 2)  # (row, col) of pixel (4, 50) of the summed panel
    wing = (core[0], 51 * 5 + 2)
    lin = grey["linear"]
    assert lin[core][0] == lin[wing][0] == 255  # clipped alike
    for s in ("asinh", "sqrt", "log"):
        img = grey[s]
        assert img[core][0] == 255 and img[wing][0] < 250, s
        sky = np.median(img[8 : 8 + 54, :, 0])
        assert sky < np.median(lin[8 : 8 + 54, :, 0]), s  # the sky darker than in linear


@pytest.mark.parametrize("stretch,cmap", [("cubic", "viridis"), ("linear", "jet"), ("", "")])
def test_unknown_views_are_refused_with_the_allowed_values(stretch, cmap):
    with pytest.raises(ValueError, match="must be one of"):
        check_view(stretch, cmap)
    with pytest.raises(ValueError, match="must be one of"):
        render_cutout_png(np.zeros((5, 9, 100), np.float32), stretch=stretch, cmap=cmap)


@pytest.fixture
def one_candidate(tmp_path, db):
    from labelapp.models import Candidate
    from labelapp.services.survey.ingest import ingest_survey
    from mlcore.survey_io import write_survey

    ingest_survey(path=write_survey(tmp_path / "s.fits", make_survey(3)))
    return Candidate.objects.select_related("batch").first()


def test_cutout_url_serves_each_view_and_caches_it_apart(client, one_candidate, settings):
    d = one_candidate.detectid
    plain = client.get(f"/candidates/{d}/cutout.png")
    assert plain.status_code == 200 and plain["Content-Type"] == "image/png"
    default = b"".join(plain.streaming_content)
    same = client.get(f"/candidates/{d}/cutout.png?stretch=linear&cmap=viridis")
    assert b"".join(same.streaming_content) == default
    r = client.get(f"/candidates/{d}/cutout.png?stretch=asinh&cmap=cividis")
    assert r.status_code == 200
    other = b"".join(r.streaming_content)
    assert other != default
    img = Image.open(io.BytesIO(other))
    assert img.size == Image.open(io.BytesIO(default)).size
    cached = sorted(p.name for p in settings.RENDER_CACHE_DIR.rglob("*.png"))
    assert cached == [f"{d}.asinh.cividis.png", f"{d}.png"]


@pytest.mark.parametrize(
    "query",
    ["stretch=cubic", "cmap=jet", "stretch=", "cmap=../../etc/passwd", "stretch=LOG"],
)
def test_bad_view_parameters_are_a_400_with_a_message(client, one_candidate, query, settings):
    r = client.get(f"/candidates/{one_candidate.detectid}/cutout.png?{query}")
    assert r.status_code == 400
    assert "must be one of" in r.content.decode()
    assert not list(settings.RENDER_CACHE_DIR.rglob("*.png"))  # nothing rendered or cached


@pytest.mark.django_db
def test_bad_view_on_an_unknown_candidate_is_still_a_clear_answer(client):
    assert client.get("/candidates/1/cutout.png?cmap=jet").status_code == 400
    assert client.get("/candidates/1/cutout.png?cmap=grey").status_code == 404
