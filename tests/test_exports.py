"""Exports: the catalogue as FITS and CSV (streamed in chunks), the classification records,
model cards and weights, and who may download them."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labelapp.models import (
    AggregationRun,
    AuditEvent,
    Candidate,
    CandidateScore,
    ConsensusState,
    Label,
    ModelVersion,
    Round,
    RoundCandidate,
    Vote,
)
from labelapp.services.science import exports as svc
from labelapp.services.survey.ingest import ingest_survey
from mlcore.survey_io import write_survey
from tests.factories import make_survey
from tests.factories_console import make_account, make_scientist
from tests.factories_volunteers import make_gold, make_volunteer

pytestmark = pytest.mark.django_db

LYA = 1215.67
PRIOR_SHIFT = {"low": 0.0, "high": math.log(3)}  # high S/N: odds x 3


def _p_real(p: float, sn: float) -> float:
    """cnn_p_real by hand: odds of cnn_prob times exp(shift of the regime)."""
    odds = p / (1 - p) * (3.0 if sn > 5.5 else 1.0)
    return odds / (1 + odds)


@pytest.fixture
def catalogue(tmp_path):
    """10 ingested candidates; a promoted model scoring 6 of them and an older one scoring
    all; an old and a newer succeeded aggregation run (plus a newer failed one); an expert
    answer; two rounds queuing some candidates."""
    ingest_survey(path=write_survey(tmp_path / "s.fits", make_survey(10)))
    low = list(Candidate.objects.order_by("pk").values_list("pk", flat=True))[1:4:2]
    Candidate.objects.filter(pk__in=low).update(sn=5.1)  # both regimes among the scored
    cands = list(Candidate.objects.order_by("pk"))
    old = ModelVersion.objects.create(
        status=ModelVersion.Status.RETIRED, label_source="truth", directory=str(tmp_path / "m1")
    )
    live = ModelVersion.objects.create(
        status=ModelVersion.Status.PROMOTED,
        label_source="consensus",
        directory=str(tmp_path / "m2"),
        card={"version": 2, "metrics": {"low": {"auc": 0.9}}, "prior_shift": PRIOR_SHIFT},
    )
    for i, c in enumerate(cands):
        CandidateScore.objects.create(
            model_version=old, candidate=c, prob=0.5, entropy=1.0, bald=0.1
        )
        if i < 6:
            CandidateScore.objects.create(
                model_version=live, candidate=c, prob=0.1 * i + 0.05, entropy=0.3 + i, bald=i / 7
            )
    old_run = AggregationRun.objects.create(method="majority", status="done")
    run = AggregationRun.objects.create(method="dawid_skene", status="done")
    AggregationRun.objects.create(method="dawid_skene", status="failed")
    for i, c in enumerate(cands[:4]):
        Label.objects.create(
            run=old_run, candidate=c, posterior=0.5, is_real=True, confidence=0.5, n_votes=1,
            info_gain=0.1,
        )  # fmt: skip
        Label.objects.create(
            run=run, candidate=c, posterior=0.2 + 0.2 * i, is_real=i >= 2, confidence=0.9,
            n_votes=3 + i, info_gain=0.1,
        )  # fmt: skip
    ConsensusState.objects.create(candidate=cands[0], posterior=0.9, n_votes=3, expert_label=False)
    r1 = Round.objects.create(number=1, status="closed")
    r2 = Round.objects.create(number=2)
    RoundCandidate.objects.create(round=r1, candidate=cands[1], rank=1, reason="exploit")
    RoundCandidate.objects.create(round=r1, candidate=cands[2], rank=2, reason="exploit")
    RoundCandidate.objects.create(round=r2, candidate=cands[2], rank=1, reason="random")
    return {"cands": cands, "live": live, "old": old, "run": run}


def _bytes(export) -> bytes:
    return b"".join(export.chunks)


def _read_fits(data: bytes):
    return fits.open(io.BytesIO(data))


def test_fits_round_trip_matches_the_database(catalogue):
    export = svc.open_catalogue_export(fmt="fits", chunk_size=4)
    data = _bytes(export)
    assert len(data) % 2880 == 0 and len(data) == export.size
    assert export.filename.startswith(f"hetdex-catalogue-v{catalogue['live'].pk}-")
    with _read_fits(data) as hdul:
        hdul.verify("exception")
        hdr = hdul[1].header
        assert hdr["NAXIS2"] == 10 and hdr["NROWS"] == 10
        assert hdr["MODELVER"] == catalogue["live"].pk
        assert hdr["AGGRUN"] == catalogue["run"].pk
        assert hdr["EXPORTED"] and "mlcore" in hdr["CODEVER"]
        units = {hdr[f"TTYPE{i}"]: hdr.get(f"TUNIT{i}") for i in range(1, hdr["TFIELDS"] + 1)}
        assert units["ra"] == "deg" and units["dec"] == "deg" and units["wave"] == "Angstrom"
        assert units["cnn_entropy"] == "bit"
    table = Table.read(io.BytesIO(data), format="fits")
    assert len(table) == 10
    assert str(table["ra"].unit) == "deg"
    for row, cand in zip(table, catalogue["cands"], strict=True):
        assert row["detectid"] == cand.detectid
        assert row["ra"] == pytest.approx(cand.ra, abs=1e-12)
        assert row["dec"] == pytest.approx(cand.dec, abs=1e-12)
        assert row["wave"] == pytest.approx(cand.wave, rel=1e-15)
        assert row["z"] == pytest.approx(cand.z_lya, rel=1e-12)
        assert row["sn"] == pytest.approx(cand.sn, rel=1e-15)
        assert row["field"] == cand.field and row["status"] == cand.status
        assert row["model_version"] == catalogue["live"].pk
    cands = catalogue["cands"]
    assert table["label"].mask.tolist() == [False] * 4 + [True] * 6  # TNULL -1 is honoured
    by_id = {row["detectid"]: row for row in fits.getdata(io.BytesIO(data), 1)}  # raw values
    for i in range(6):  # scored by the live model
        row = by_id[cands[i].detectid]
        assert row["cnn_prob"] == pytest.approx(0.1 * i + 0.05)
        assert row["cnn_entropy"] == pytest.approx(0.3 + i)
        assert row["cnn_bald"] == pytest.approx(i / 7)
        assert row["cnn_p_real"] == pytest.approx(_p_real(0.1 * i + 0.05, cands[i].sn))
    assert {c.sn > 5.5 for c in cands[:6]} == {True, False}  # both regimes are checked
    assert math.isnan(by_id[cands[7].detectid]["cnn_prob"])  # not scored by the live model
    assert math.isnan(by_id[cands[7].detectid]["cnn_p_real"])
    with _read_fits(data) as hdul:
        assert hdul[1].header["PSHIFTHI"] == pytest.approx(math.log(3))
        assert hdul[1].header["PSHIFTLO"] == 0.0
    # labels of the latest succeeded run, not the older one nor the failed one
    assert [by_id[c.detectid]["label"] for c in cands[:5]] == [0, 0, 1, 1, -1]
    assert by_id[cands[3].detectid]["posterior"] == pytest.approx(0.8)
    assert by_id[cands[3].detectid]["n_votes"] == 6
    assert math.isnan(by_id[cands[5].detectid]["posterior"])
    assert by_id[cands[0].detectid]["expert_label"] == 0
    assert by_id[cands[1].detectid]["expert_label"] == -1
    assert [by_id[c.detectid]["round"] for c in cands[:4]] == [-1, 1, 2, -1]


def test_catalogue_of_a_chosen_model_version(catalogue):
    data = _bytes(svc.open_catalogue_export(fmt="fits", model_version_id=catalogue["old"].pk))
    table = Table.read(io.BytesIO(data), format="fits")
    assert np.all(table["cnn_prob"] == 0.5)
    assert table["cnn_p_real"].mask.all()  # NaN (masked): its card has no prior shift
    assert np.all(table["model_version"] == catalogue["old"].pk)
    with pytest.raises(svc.ExportError, match="no model version 999"):
        svc.open_catalogue_export(fmt="fits", model_version_id=999)


def test_csv_round_trip(catalogue):
    export = svc.open_catalogue_export(fmt="csv", chunk_size=3)
    rows = list(csv.reader(io.StringIO(_bytes(export).decode())))
    assert rows[0] == [c.name for c in svc.CATALOGUE_COLUMNS]
    assert rows[0][:8] == ["detectid", "ra", "dec", "wave", "z", "sn", "field", "status"]
    body = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert len(body) == 10
    for row, cand in zip(body, catalogue["cands"], strict=True):
        assert int(row["detectid"]) == cand.detectid
        assert float(row["ra"]) == cand.ra and float(row["dec"]) == cand.dec  # repr: exact
        assert float(row["wave"]) == cand.wave and float(row["sn"]) == cand.sn
        assert float(row["z"]) == pytest.approx(cand.z_lya, rel=1e-15)
        assert row["field"] == cand.field and row["status"] == cand.status
    assert float(body[2]["cnn_prob"]) == pytest.approx(0.25)
    assert float(body[2]["cnn_p_real"]) == pytest.approx(_p_real(0.25, catalogue["cands"][2].sn))
    assert body[8]["cnn_prob"] == "" and body[8]["posterior"] == "" and body[8]["cnn_p_real"] == ""
    assert [r["label"] for r in body[:5]] == ["0", "0", "1", "1", "-1"]
    assert body[2]["round"] == "2" and body[0]["round"] == "-1"
    assert {r["model_version"] for r in body} == {str(catalogue["live"].pk)}


def test_empty_catalogue_is_still_a_valid_file():
    data = _bytes(svc.open_catalogue_export(fmt="fits"))
    with _read_fits(data) as hdul:
        assert hdul[1].header["NAXIS2"] == 0 and hdul[1].header["MODELVER"] == -1
    text = _bytes(svc.open_catalogue_export(fmt="csv")).decode()
    assert text.strip() == ",".join(c.name for c in svc.CATALOGUE_COLUMNS)


@pytest.mark.parametrize("fmt", ["fits", "csv"])
def test_streaming_is_chunked_with_one_query_per_chunk(catalogue, fmt):
    export = svc.open_catalogue_export(fmt=fmt, chunk_size=3)  # plans (counts) here
    with CaptureQueriesContext(connection) as ctx:
        pieces = list(export.chunks)
    # 10 rows in chunks of 3: four row chunks (3, 3, 3, 1) and one query each
    assert len(ctx.captured_queries) == 4
    non_empty = [p for p in pieces if p]
    assert len(non_empty) >= 4
    if fmt == "csv":
        assert [p.count(b"\n") for p in non_empty] == [4, 3, 3, 1]  # header in the first


def test_rows_inserted_or_deleted_during_export_keep_the_fits_valid(catalogue):
    cands = catalogue["cands"]
    export = svc.open_catalogue_export(fmt="fits", chunk_size=3)
    pieces = [next(export.chunks), next(export.chunks)]  # headers, first 3 rows
    template = cands[0]
    Candidate.objects.create(
        detectid=99_999_999, batch=template.batch, row=999, shotid=1, field="cosmos", ra=1.0,
        dec=2.0, wave=4000.0, flux=1, flux_err=1, linewidth=1, continuum=0, sn=5, chi2=1,
    )  # fmt: skip
    Candidate.objects.filter(pk=cands[-1].pk).delete()
    pieces.extend(export.chunks)
    table = Table.read(io.BytesIO(b"".join(pieces)), format="fits")
    assert len(table) == 10
    assert 99_999_999 not in set(table["detectid"])
    assert list(table["detectid"][:9]) == [c.detectid for c in cands[:9]]
    assert table["detectid"][9] == -1 and table["status"][9] == "deleted"


# ------------------------------------------------------------------ classifications


@pytest.fixture
def votes(catalogue):
    cands = catalogue["cands"]
    make_gold(cands[0], is_real=True)
    alice = make_account("alice-secret", email="alice@example.org")
    registered = make_volunteer(user=alice)
    anonymous = make_volunteer()
    vs = [
        Vote.objects.create(volunteer=registered, candidate=cands[0], answer="yes", was_gold=True),
        Vote.objects.create(volunteer=registered, candidate=cands[1], answer="no", reason="sky"),
        Vote.objects.create(volunteer=anonymous, candidate=cands[1], answer="unsure"),
        Vote.objects.create(volunteer=anonymous, candidate=cands[2], answer="yes", client="swipe"),
    ]
    return {"votes": vs, "registered": registered, "anonymous": anonymous}


def test_votes_export_has_one_row_per_vote_and_no_identities(votes):
    export = svc.open_votes_export(chunk_size=3)
    pieces = list(export.chunks)
    assert len(pieces) >= 2  # chunked
    data = b"".join(pieces)
    assert b"alice" not in data.lower() and b"example.org" not in data
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert len(rows) == 4 == export.n_rows
    assert [int(r["vote_id"]) for r in rows] == [v.pk for v in votes["votes"]]
    first, second, third, _ = rows
    assert first["detectid"] == str(votes["votes"][0].candidate.detectid)
    assert first["answer"] == "yes" and first["was_gold"] == "1" and first["registered"] == "1"
    assert second["reason"] == "sky" and second["was_gold"] == "0"
    assert third["registered"] == "0"
    assert first["volunteer"] == second["volunteer"] != third["volunteer"]
    assert first["created_at"] == votes["votes"][0].created_at.isoformat()
    assert str(votes["registered"].pk) not in {first["volunteer"], first["volunteer"][1:]}


def test_pseudonyms_are_stable_across_exports_and_keyed(votes, settings):
    a = list(csv.DictReader(io.StringIO(_bytes(svc.open_votes_export()).decode())))
    b = list(csv.DictReader(io.StringIO(_bytes(svc.open_votes_export(chunk_size=1)).decode())))
    assert [r["volunteer"] for r in a] == [r["volunteer"] for r in b]
    assert a[0]["volunteer"] == svc.pseudonym(votes["registered"].pk)
    settings.SECRET_KEY = "another-key-" * 4
    assert svc.pseudonym(votes["registered"].pk) != a[0]["volunteer"]


# ------------------------------------------------------------------ views and access

URLS = [
    "/console/exports/",
    "/console/exports/catalogue.fits",
    "/console/exports/catalogue.csv",
    "/console/exports/classifications.csv",
]


@pytest.mark.parametrize("url", URLS)
def test_anonymous_is_sent_to_log_in(client, url):
    resp = client.get(url)
    assert resp.status_code == 302 and "login" in resp["Location"]


@pytest.mark.parametrize("url", [*URLS, "/console/models/1/card.json"])
def test_volunteer_account_is_forbidden(client, url):
    client.force_login(make_account())
    assert client.get(url).status_code == 403


@pytest.fixture
def sci_client(client):
    client.force_login(make_scientist())
    return client


def test_scientist_downloads_the_fits_catalogue_and_it_is_audited(sci_client, catalogue):
    resp = sci_client.get("/console/exports/catalogue.fits")
    assert resp.status_code == 200 and resp.streaming
    assert resp["Content-Type"] == "application/fits"
    live = catalogue["live"].pk
    disposition = resp["Content-Disposition"]
    assert disposition.startswith(f'attachment; filename="hetdex-catalogue-v{live}-')
    assert disposition.endswith('.fits"')
    data = b"".join(resp.streaming_content)
    assert int(resp["Content-Length"]) == len(data)
    assert len(Table.read(io.BytesIO(data), format="fits")) == 10
    event = AuditEvent.objects.get(action="export")
    assert event.target == "catalogue.fits" and event.detail["rows"] == 10
    assert event.user.username == "sci"


def test_scientist_chooses_the_model_and_gets_csv(sci_client, catalogue):
    old = catalogue["old"].pk
    resp = sci_client.get(f"/console/exports/catalogue.csv?model={old}")
    assert resp.status_code == 200
    assert f"hetdex-catalogue-v{old}-" in resp["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(resp.streaming_content).decode())))
    assert {r["cnn_prob"] for r in rows} == {"0.5"}
    assert sci_client.get("/console/exports/catalogue.csv?model=999").status_code == 404
    assert sci_client.get("/console/exports/catalogue.csv?model=x").status_code == 404


def test_unknown_format_is_404_with_a_message(sci_client, catalogue):
    resp = sci_client.get("/console/exports/catalogue.xlsx")
    assert resp.status_code == 404
    assert not AuditEvent.objects.filter(action="export").exists()
    with pytest.raises(svc.ExportError, match="catalogue.fits or catalogue.csv"):
        svc.open_catalogue_export(fmt="xlsx")


def test_votes_view_streams_and_audits(sci_client, votes):
    resp = sci_client.get("/console/exports/classifications.csv")
    assert resp.status_code == 200
    assert resp["Content-Disposition"].startswith('attachment; filename="hetdex-classifications-')
    rows = list(csv.DictReader(io.StringIO(b"".join(resp.streaming_content).decode())))
    assert len(rows) == 4
    assert AuditEvent.objects.get(action="export").target == "classifications.csv"


def test_exports_page_lists_downloads_and_models(sci_client, catalogue):
    resp = sci_client.get("/console/exports/")
    html = resp.content.decode()
    assert resp.status_code == 200
    assert "/console/exports/catalogue.fits" in html and "/console/exports/catalogue.csv" in html
    assert "/console/exports/classifications.csv" in html
    assert "10 rows" in html
    live = catalogue["live"].pk
    assert f'<option value="{live}" selected' in html
    assert f"/console/models/{live}/weights.pt" in html


def test_model_card_and_weights(sci_client, catalogue):
    live = catalogue["live"]
    resp = sci_client.get(f"/console/models/{live.pk}/card.json")
    assert resp.status_code == 200 and json.loads(resp.content) == live.card
    # no weights on disk yet: 404 that says what is missing
    resp = sci_client.get(f"/console/models/{live.pk}/weights.pt")
    assert resp.status_code == 404
    with pytest.raises(svc.ExportError, match="model.pt is missing"):
        svc.model_weights_path(live)
    Path(live.directory).mkdir(parents=True)
    (Path(live.directory) / "model.pt").write_bytes(b"weights-bytes")
    resp = sci_client.get(f"/console/models/{live.pk}/weights.pt")
    assert resp.status_code == 200
    assert b"".join(resp.streaming_content) == b"weights-bytes"
    assert f'filename="hetdex-model-v{live.pk}.pt"' in resp["Content-Disposition"]
    assert AuditEvent.objects.filter(target=f"model-v{live.pk}/weights.pt").count() == 1
    # a card only on disk, and a model with none
    old = catalogue["old"]
    assert sci_client.get(f"/console/models/{old.pk}/card.json").status_code == 404
    Path(old.directory).mkdir(parents=True)
    (Path(old.directory) / "card.json").write_text('{"version": 1}')
    assert json.loads(sci_client.get(f"/console/models/{old.pk}/card.json").content) == {
        "version": 1
    }
    assert sci_client.get("/console/models/999/weights.pt").status_code == 404


# ------------------------------------------------------- ECSV and VOTable (issue #27)

UCDS = {
    "detectid": "meta.id;meta.main",
    "ra": "pos.eq.ra;meta.main",
    "dec": "pos.eq.dec;meta.main",
    "wave": "em.wl",
    "sn": "stat.snr",
    "cnn_prob": "stat.probability",
    "posterior": "stat.probability",
    "batch": "meta.dataset",
}
ASTROPY_FORMAT = {"ecsv": "ascii.ecsv", "vot": "votable"}


def _missing(v) -> bool:
    """Masked, or a NaN float (astropy masks NaN when it reads FITS, not when it reads ECSV)."""
    return np.ma.is_masked(v) or (isinstance(v, float | np.floating) and np.isnan(v))


def _same(a, b) -> bool:
    """Equal values, or missing in both."""
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    return a == b


@pytest.mark.parametrize("fmt", ["ecsv", "vot"])
def test_astronomy_formats_round_trip_with_units_and_ucds(catalogue, fmt):
    import warnings

    from astropy.units import UnitsWarning

    export = svc.open_catalogue_export(fmt=fmt, chunk_size=3)
    data = _bytes(export)
    assert export.filename.endswith(f".{fmt}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        t = Table.read(io.BytesIO(data), format=ASTROPY_FORMAT[fmt])
    ref = Table.read(io.BytesIO(_bytes(svc.open_catalogue_export(fmt="fits"))), format="fits")
    assert len(t) == 10 and t.colnames == [c.name for c in svc.CATALOGUE_COLUMNS]
    assert str(t["ra"].unit) == "deg" and str(t["wave"].unit) == "Angstrom"
    assert str(t["cnn_entropy"].unit) == "bit" and t["sn"].unit is None
    for name, ucd in UCDS.items():
        assert t[name].meta["ucd"] == ucd, name
    assert "wavelength" in t["wave"].description
    # joined by detectid (not by position) with the FITS export of the same catalogue
    by_id = {int(r["detectid"]): r for r in ref}
    assert set(by_id) == {int(d) for d in t["detectid"]}
    for row in t:
        other = by_id[int(row["detectid"])]
        for name in t.colnames:
            assert _same(row[name], other[name]), (name, row[name], other[name])
    scored = [r for r in t if not _missing(r["cnn_prob"])]
    assert len(scored) == 6 and {round(float(r["cnn_prob"]), 2) for r in scored} == {
        0.05, 0.15, 0.25, 0.35, 0.45, 0.55
    }  # fmt: skip
    assert t["label"].mask.tolist() == [False] * 4 + [True] * 6  # -1 -> masked
    if fmt == "ecsv":
        assert t.meta["MODELVER"] == catalogue["live"].pk and t.meta["NROWS"] == 10
    else:
        from astropy.io.votable import parse

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnitsWarning)
            vot = parse(io.BytesIO(data), verify="exception")  # schema-level problems raise
        infos = {i.name: i.value for i in vot.get_first_table().infos}
        assert infos["MODELVER"] == str(catalogue["live"].pk) and infos["NROWS"] == "10"


@pytest.mark.parametrize("fmt", ["fits", "csv", "ecsv", "vot"])
def test_every_export_carries_batch_and_row(catalogue, fmt):
    data = _bytes(svc.open_catalogue_export(fmt=fmt, chunk_size=4))
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(data.decode())))
        got = {int(r["detectid"]): (r["batch"], int(r["row"])) for r in rows}
    else:
        t = Table.read(io.BytesIO(data), format={"fits": "fits", **ASTROPY_FORMAT}[fmt])
        got = {int(r["detectid"]): (str(r["batch"]), int(r["row"])) for r in t}
    want = {c.detectid: (c.batch.name, c.row) for c in Candidate.objects.select_related("batch")}
    assert got == want and len({b for b, _ in want.values()}) == 1
    assert sorted(r for _, r in want.values()) == list(range(10))


@pytest.mark.parametrize("fmt", ["ecsv", "vot"])
def test_empty_catalogue_in_astronomy_formats_is_a_valid_file(fmt):
    data = _bytes(svc.open_catalogue_export(fmt=fmt))
    t = Table.read(io.BytesIO(data), format=ASTROPY_FORMAT[fmt])
    assert len(t) == 0 and "detectid" in t.colnames


@pytest.mark.parametrize("fmt", ["ecsv", "vot"])
def test_astronomy_formats_stream_one_query_per_chunk(catalogue, fmt):
    export = svc.open_catalogue_export(fmt=fmt, chunk_size=3)
    with CaptureQueriesContext(connection) as ctx:
        pieces = list(export.chunks)
    assert len(ctx.captured_queries) == 4 and len([p for p in pieces if p]) >= 5


def test_scientist_downloads_a_votable_and_it_is_audited(sci_client, catalogue):
    resp = sci_client.get("/console/exports/catalogue.vot")
    assert resp.status_code == 200 and resp["Content-Type"] == "application/x-votable+xml"
    data = b"".join(resp.streaming_content)
    assert len(Table.read(io.BytesIO(data), format="votable")) == 10
    assert AuditEvent.objects.get(action="export").target == "catalogue.vot"
    html = sci_client.get("/console/exports/").content.decode()
    assert "/console/exports/catalogue.ecsv" in html and "/console/exports/catalogue.vot" in html
