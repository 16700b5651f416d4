"""Console science pages: N(z) with spikes (labelapp.services.science.redshift) and external
validation uploads (labelapp.services.science.external_validation)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.shortcuts import resolve_url
from django.urls import reverse

from labelapp.models import AuditEvent, Candidate, CandidateScore, IngestBatch, ModelVersion
from labelapp.services.science import redshift as nz_service
from labelapp.services.science.external_validation import (
    ExternalCatalogue,
    ExternalUploadError,
    read_upload,
    validate_against_external,
)
from mlcore.survey import LYA_REST
from mlcore.survey_io import write_external
from tests.factories_console import make_account, make_scientist

pytestmark = pytest.mark.django_db

ARCSEC = 1 / 3600


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    """A private in-memory cache per test: the N(z) report is cached."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "test-console-science",
        }
    }
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def _catalogue(wave, sn, *, ra=None, dec=None, first_id=7_000_000) -> list[Candidate]:
    wave, sn = np.asarray(wave, float), np.asarray(sn, float)
    n = len(wave)
    ra = np.full(n, 150.0) if ra is None else np.asarray(ra, float)
    dec = np.full(n, 2.2) if dec is None else np.asarray(dec, float)
    batch = IngestBatch.objects.create(
        name=f"nz{first_id}", file_sha256=f"{first_id:064d}", source_path="/dev/null",
        file_format="fits", n_candidates=n, store_path="/nonexistent", store_dtype="float16",
    )  # fmt: skip
    rows = [
        Candidate(
            detectid=first_id + i, batch=batch, row=i, shotid=1, field="cosmos",
            ra=float(ra[i]), dec=float(dec[i]), wave=float(wave[i]), flux=10, flux_err=2,
            linewidth=3, continuum=0, sn=float(sn[i]), chi2=1, priority=-float(sn[i]),
        )
        for i in range(n)
    ]  # fmt: skip
    return Candidate.objects.bulk_create(rows)


def _live_model(candidates, probs) -> ModelVersion:
    model = ModelVersion.objects.create(
        status=ModelVersion.Status.PROMOTED, label_source="truth", directory="/nonexistent"
    )
    CandidateScore.objects.bulk_create(
        CandidateScore(model_version=model, candidate=c, prob=float(p), entropy=0.1, bald=0.01)
        for c, p in zip(candidates, probs, strict=True)
    )
    return model


@pytest.fixture
def sci_client(client):
    client.force_login(make_scientist())
    return client


# --- N(z): histogram in the database ------------------------------------------------------


def test_database_histogram_equals_numpy_histogram(django_assert_num_queries):
    rng = np.random.default_rng(0)
    wave = rng.uniform(3470, 5540, 3000)  # some outside the usable range: left out
    wave[:4] = [3510.0, 3520.0, 4000.0, 5496.0]  # exactly on bin edges
    sn = rng.uniform(4.0, 8.0, 3000)
    _catalogue(wave, sn)
    for width in (10.0, 7.0, 2.0):
        binning = nz_service.Binning.over_usable_range(width)
        span = (binning.lo, binning.hi)
        expect, _ = np.histogram(wave[sn >= 4.8], bins=binning.nbins, range=span)
        with django_assert_num_queries(1):  # one GROUP BY, no loop over candidates
            got = nz_service.histogram_counts(
                Candidate.objects.filter(sn__gte=4.8), binning=binning
            )
        np.testing.assert_array_equal(got, expect)


def test_report_counts_each_selection_like_numpy():
    rng = np.random.default_rng(1)
    wave, sn, prob = rng.uniform(3510, 5496, 2000), rng.uniform(4.0, 8.0, 2000), rng.random(2000)
    cands = _catalogue(wave, sn)
    _live_model(cands, prob)
    rep = nz_service.redshift_report(cut=0.3, bin_width=10.0)
    sel = {s["key"]: s for s in rep["selections"]}
    rng_ = (rep["lo"], rep["hi"])
    for key, mask in {
        "high": sn > 5.5,
        "all": sn >= 4.8,
        "cnn": (sn >= 4.8) & (prob >= 0.3),
    }.items():
        expect, _ = np.histogram(wave[mask], bins=rep["nbins"], range=rng_)
        assert sel[key]["counts"] == expect.tolist(), key
        assert sel[key]["n"] == int(mask.sum())
    assert rep["z_centres"][0] == pytest.approx(rep["wave_centres"][0] / LYA_REST - 1, abs=1e-5)
    assert rep["n_scored"] == int((sn >= 4.8).sum())


def test_report_is_cached_until_the_catalogue_changes(django_assert_max_num_queries):
    rng = np.random.default_rng(2)
    _catalogue(rng.uniform(3510, 5496, 500), rng.uniform(4.8, 8, 500))
    first = nz_service.redshift_report()
    with django_assert_max_num_queries(3):  # live model + the key's two max(pk): no histograms
        assert nz_service.redshift_report() == first
    _catalogue([4000.0], [6.0], first_id=8_000_000)
    assert nz_service.redshift_report()["selections"][0]["n"] == first["selections"][0]["n"] + 1


def _spiky_catalogue():
    """A smooth N(z) (~25 per 10 A bin at S/N >= 4.8) plus 150 low-S/N candidates at
    4503-4507 A that the CNN rejects: a spike before the cut, none after."""
    rng = np.random.default_rng(4)
    n = 5000
    wave = rng.uniform(3510, 5496, n)
    sn = 4.8 + rng.exponential(1.0, n)
    prob = np.clip(rng.normal(0.85, 0.05, n), 0, 1)
    spike_wave = rng.uniform(4503, 4507, 150)
    wave = np.concatenate([wave, spike_wave])
    sn = np.concatenate([sn, rng.uniform(4.8, 5.2, 150)])
    prob = np.concatenate([prob, rng.uniform(0.0, 0.2, 150)])
    cands = _catalogue(wave, sn)
    return cands, prob


def test_planted_spike_found_before_and_gone_after_the_cut():
    cands, prob = _spiky_catalogue()
    _live_model(cands, prob)
    rep = nz_service.redshift_report()
    sel = {s["key"]: s for s in rep["selections"]}
    assert [s["wave"] for s in sel["all"]["spikes"]] == [4505.0]
    assert sel["all"]["excess"] == pytest.approx(150, abs=30)
    assert sel["cnn"]["n_spikes"] == 0 and sel["cnn"]["excess"] == 0
    assert sel["high"]["n_spikes"] == 0
    # the figure: three step histograms with fits, the spike marked, sky windows shaded
    fig = rep["figure"]
    marked = [
        t["legendgroup"]
        for t in fig["data"]
        if t.get("mode") == "markers" and t.get("xaxis") != "x2"
    ]
    assert marked == ["all"]  # spike markers on the "before" histogram only
    assert len(fig["layout"]["shapes"]) == 3


def test_redshift_page_shows_spikes_and_the_plot(sci_client):
    cands, prob = _spiky_catalogue()
    _live_model(cands, prob)
    resp = sci_client.get(reverse("console-redshift"))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'data-plot="fig-nz"' in html and 'id="fig-nz"' in html
    before = html.split('data-selection="all"')[1].split("</tr>")[0]
    after = html.split('data-selection="cnn"')[1].split("</tr>")[0]
    assert "4505 Å" in before and "<strong>1</strong>" in before
    assert "<strong>0</strong>" in after and "none" in after
    assert "No live model" not in html


def test_redshift_page_without_a_live_model(sci_client):
    rng = np.random.default_rng(5)
    _catalogue(rng.uniform(3510, 5496, 300), rng.uniform(4.8, 8, 300))
    resp = sci_client.get(reverse("console-redshift"))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "No live model" in html
    after = html.split('data-selection="cnn"')[1].split("</tr>")[0]
    assert "no live model" in after


def test_redshift_page_on_an_empty_catalogue(sci_client):
    resp = sci_client.get(reverse("console-redshift"))
    assert resp.status_code == 200
    assert "none" in resp.content.decode()


def test_redshift_page_with_a_cut_and_width_and_a_bad_value(sci_client):
    rng = np.random.default_rng(6)
    cands = _catalogue(rng.uniform(3510, 5496, 300), rng.uniform(4.8, 8, 300))
    _live_model(cands, rng.random(300))
    ok = sci_client.get(reverse("console-redshift"), {"cut": "0.8", "width": "20"})
    assert ok.status_code == 200
    assert ok.context["report"]["cut"] == 0.8 and ok.context["report"]["nbins"] == 100
    bad = sci_client.get(reverse("console-redshift"), {"cut": "2"})
    assert bad.status_code == 400
    assert "less than or equal to 1" in bad.content.decode()
    assert bad.context["report"]["cut"] == nz_service.DEFAULT_CUT


# --- external validation: the cross-match ---------------------------------------------------


def _hand_checked():
    """Four candidates and four external sources whose matches are known by hand."""
    z_a, z_b = 2.5, 2.8
    cands = _catalogue(
        wave=[LYA_REST * (1 + z_a), LYA_REST * (1 + z_b), 4000.0, 4100.0, 4600.0],
        sn=[6.0, 5.0, 6.5, 5.2, 5.0],
        ra=[150.0, 150.1, 150.2, 150.0, 150.1],
        dec=[2.0, 2.1, 2.2, 2.0 + 0.5 * ARCSEC, 2.1 + 1.2 * ARCSEC],
        first_id=6_000_000,
    )
    # A: exact match. B: the source is 1 arcsec north of it. C's position but Lya of the
    # source's z is 50 A from C's line. D: nowhere near. Decoys: a candidate 0.5" from the
    # source of A, and one 0.2" from the source of B, both at other wavelengths.
    ext = ExternalCatalogue(
        name="hand.csv",
        kind="csv",
        ra=np.array([150.0, 150.1, 150.2, 151.0]),
        dec=np.array([2.0, 2.1 + 1 * ARCSEC, 2.2, 3.0]),
        z=np.array([z_a, z_b, (4050.0 / LYA_REST) - 1, 2.5]),
    )
    return cands, ext


def test_crossmatch_hand_checked_pairs_without_a_live_model():
    cands, ext = _hand_checked()
    rep = validate_against_external(ext)
    assert rep["matched_detectid"] == [cands[0].detectid, cands[1].detectid, None, None]
    assert rep["n_matched"] == 2 and rep["n_unmatched"] == 2
    regimes = {r["key"]: r for r in rep["regimes"]}
    assert regimes["high"]["n_matched"] == 1 and regimes["low"]["n_matched"] == 1
    assert regimes["high"]["recovery"] is None  # no live model: matches only
    ex = {e["detectid"]: e for e in rep["examples"]}
    assert ex[cands[1].detectid]["sep_arcsec"] == pytest.approx(1.0, abs=0.01)
    assert ex[cands[0].detectid]["sep_arcsec"] == pytest.approx(0.0, abs=0.01)


def test_crossmatch_recovery_per_regime_with_a_live_model():
    cands, ext = _hand_checked()
    _live_model(cands, [0.9, 0.3, 0.9, 0.9, 0.9])
    rep = validate_against_external(ext, cut=0.5)
    regimes = {r["key"]: r for r in rep["regimes"]}
    assert (regimes["high"]["n_recovered"], regimes["high"]["recovery"]) == (1, 1.0)
    assert (regimes["low"]["n_recovered"], regimes["low"]["recovery"]) == (0, 0.0)
    assert regimes["overall"]["recovery_pct"] == 50.0
    rec = {e["detectid"]: e["recovered"] for e in rep["examples"]}
    assert rec == {cands[0].detectid: True, cands[1].detectid: False}


# --- external validation: uploads through the page -------------------------------------------


def _fits_bytes(tmp_path, ra, dec, z) -> bytes:
    path = write_external(
        tmp_path / "ext.fits",
        {"ra": np.asarray(ra), "dec": np.asarray(dec), "z": np.asarray(z),
         "quality": np.zeros(len(ra), np.int16)},
    )  # fmt: skip
    return path.read_bytes()


def _post(client, name: str, content: bytes, cut: str = "0.5"):
    upload = SimpleUploadedFile(name, content, content_type="application/octet-stream")
    return client.post(reverse("console-external"), {"catalogue": upload, "cut": cut})


def test_external_page_get(sci_client):
    resp = sci_client.get(reverse("console-external"))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'enctype="multipart/form-data"' in html and "csrfmiddlewaretoken" in html


def test_fits_upload_through_the_page(sci_client, tmp_path):
    cands, ext = _hand_checked()
    _live_model(cands, [0.9, 0.3, 0.9, 0.9, 0.9])
    # named .csv on purpose: the type comes from the bytes
    resp = _post(sci_client, "desi.csv", _fits_bytes(tmp_path, ext.ra, ext.dec, ext.z))
    assert resp.status_code == 200, resp.context.get("problems")
    html = resp.content.decode()
    report = resp.context["report"]
    assert report["kind"] == "fits" and report["n_matched"] == 2
    assert reverse("console-candidate", args=[cands[0].detectid]) in html
    assert 'id="recovery-table"' in html and "100.0 %" in html and "50.0 %" in html
    event = AuditEvent.objects.get(action="external_validation")
    assert event.target == "desi.csv"
    assert event.detail["ok"] is True and event.detail["n_matched"] == 2
    assert event.detail["regimes"]["high"] == [1, 1]


def test_csv_upload_through_the_page_without_a_live_model(sci_client):
    cands, ext = _hand_checked()
    rows = "\n".join(
        f"{float(r)!r},{float(d)!r},{float(z)!r},0"
        for r, d, z in zip(ext.ra, ext.dec, ext.z, strict=True)
    )
    resp = _post(sci_client, "desi.dat", f"RA,Dec,z,quality\n{rows}\n".encode())
    assert resp.status_code == 200, resp.context.get("problems")
    assert resp.context["report"]["kind"] == "csv"
    assert resp.context["report"]["matched_detectid"][:2] == [c.detectid for c in cands[:2]]
    assert "No live model" in resp.content.decode()
    assert AuditEvent.objects.filter(action="external_validation").count() == 1


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("pic.fits", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "not a FITS file"),
        ("notes.csv", b"just some words\nnothing tabular here\n", "not a CSV"),
        ("nodec.csv", b"ra,z\n150.0,2.5\n", "lacks column(s) dec"),
        ("nan.csv", b"ra,dec,z\n150.0,2.0,2.5\n150.0,nan,2.5\n", "column 'dec' row 2: nan is"),
        ("text.csv", b"ra,dec,z\n150.0,2.0,abc\n", "column 'z' row 1: 'abc' is not a number"),
        ("sky.csv", b"ra,dec,z\n360.0,2.0,2.5\n150.0,-91,2.5\n", "column 'ra' row 1"),
        ("empty.csv", b"ra,dec,z\n", "no rows"),
        ("short.csv", b"ra,dec,z\n150.0,2.0\n", "row 1: 2 values for 3 columns"),
        ("latin.csv", "ra,dec,z,name\n150,2,2.5,caf\xe9\n".encode("latin-1"), "not UTF-8"),
        ("broken.fits", b"SIMPLE  =                    T" + b" " * 99, "be read as a FITS"),
        ("q.csv", b"ra,dec,z,quality\n150,2,2.5,good\n", "column 'quality' row 1"),
        # was a 500 (OverflowError into int16), issue #24
        ("big_q.csv", b"ra,dec,z,quality\n150,2,2.5,99999999999999999999\n", "out of range"),
        ("neg_q.csv", b"ra,dec,z,quality\n150,2,2.5,-40000\n", "column 'quality' row 1: -40000"),
    ],
)
def test_bad_uploads_are_refused_with_a_clear_message(sci_client, name, content, message):
    resp = _post(sci_client, name, content)
    assert resp.status_code == 400
    html = resp.content.decode()
    assert 'id="upload-problems"' in html
    assert message.replace("'", "&#x27;") in html
    event = AuditEvent.objects.get(action="external_validation")
    assert event.detail["ok"] is False and event.target == name


def test_too_big_upload_refused(sci_client, settings):
    settings.EXTERNAL_UPLOAD_MAX_BYTES = 100
    resp = _post(sci_client, "big.csv", b"ra,dec,z\n" + b"150.0,2.0,2.5\n" * 50)
    assert resp.status_code == 400
    assert "the limit is 100 bytes" in resp.content.decode()


def test_no_file_is_a_form_error(sci_client):
    resp = sci_client.post(reverse("console-external"), {"cut": "0.5"})
    assert resp.status_code == 400
    assert "This field is required" in resp.content.decode()
    assert AuditEvent.objects.get(action="external_validation").detail["ok"] is False


def test_uploaded_names_and_values_are_escaped(sci_client):
    resp = _post(sci_client, "<script>alert(1)</script>.csv", b"ra,dec,z\n150,2,<b>x</b>\n")
    assert resp.status_code == 400
    html = resp.content.decode()
    assert "<script>alert(1)" not in html and "<b>x</b>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


def test_read_upload_streams_and_sniffs():
    content = b"ra,dec,z\n150.0,2.0,2.5\n"
    cat = read_upload(SimpleUploadedFile("x.fits", content))
    assert cat.kind == "csv" and len(cat) == 1 and cat.z[0] == pytest.approx(2.5)
    # byte-order mark, quoted fields, extra columns in any order, blank lines
    bom = '\ufeffname,"Z",DEC,RA\n"a, b",2.5,2.0,150.0\n\n"c",3.0,-1.0,10.0\n'.encode()
    cat = read_upload(SimpleUploadedFile("bom.csv", bom))
    assert cat.ra.tolist() == [150.0, 10.0] and cat.dec.tolist() == [2.0, -1.0]
    assert cat.z.tolist() == [2.5, 3.0] and cat.row.tolist() == [1, 3]
    with pytest.raises(ExternalUploadError, match="limit"):
        read_upload(SimpleUploadedFile("x.csv", content), max_bytes=10)
    with pytest.raises(ExternalUploadError, match="empty"):
        read_upload(SimpleUploadedFile("x.csv", io.BytesIO(b"").read()))


# --- access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url_name", ["console-redshift", "console-external"])
def test_anonymous_is_sent_to_log_in(client, url_name):
    resp = client.get(reverse(url_name))
    assert resp.status_code == 302
    assert resp.url.startswith(resolve_url("login"))


@pytest.mark.parametrize("url_name", ["console-redshift", "console-external"])
def test_volunteers_get_403(client, url_name):
    client.force_login(make_account())
    assert client.get(reverse(url_name)).status_code == 403
    assert client.post(reverse(url_name), {}).status_code == 403
    assert not AuditEvent.objects.exists()
