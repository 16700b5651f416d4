"""HETDEX PDR1 (HPSC-2 catalogue FITS + 1D-spectra FITS) as a survey source (issue #22, item 3).

Fixtures are simulated surveys written in PDR1's layout by ``mlcore.pdr1_io.write_pdr1``
(spectra rows shuffled against the catalogue, -999 sentinels in p_cnn, p_conf, continuum and
apcor), then edited into the hostile cases: repeated ids, ids missing on either side,
sentinels in required columns, wrong and repeated HDU names, another wavelength grid,
another flux unit.
"""

from __future__ import annotations

from io import StringIO

import numpy as np
import pytest
from astropy.io import fits
from django.core.management import call_command

from labelapp.models import Candidate, ExternalScore
from labelapp.services.crowd.queue import queue_queryset
from labelapp.services.survey.ingest import IngestError, ingest_survey
from mlcore.cutout_quality import NO_CUTOUT, NOT_IN_PRODUCT, describe
from mlcore.pdr1_io import PDR1_SOURCE, write_pdr1
from mlcore.store import CutoutStore
from tests.factories import make_survey
from tests.ingest_checks import assert_nothing_written, assert_refused

pytestmark = pytest.mark.django_db

RATES = {"p_cnn": 0.1, "p_conf": 0.1, "continuum": 0.1, "apcor": 0.1}


def _files(tmp_path, n=40, seed=2, rates=RATES):
    s = make_survey(n, seed=seed)
    out = write_pdr1(
        s, tmp_path / "hpsc2.fits", tmp_path / "hpsc2_spec.fits", seed=seed, rates=rates
    )
    return s, out


def _ingest(out, **kw):
    return ingest_survey(path=out["catalogue"], spectra=out["spectra"], **kw)


def _nothing_written(settings):
    assert_nothing_written(settings)


def _refused(out, settings, *fragments):
    return assert_refused(lambda: _ingest(out), settings, *fragments)


def _edit(path, fn):
    """Rewrite a FITS file after ``fn(hdul)`` changed it in memory."""
    with fits.open(path) as hdul:
        new = fits.HDUList([h.copy() for h in hdul])
    fn(new)
    new.writeto(path, overwrite=True)


def _set_cat(path, row, **values):
    def fn(hdul):
        for k, v in values.items():
            hdul[1].data[k][row] = v

    _edit(path, fn)


# --- the good path ------------------------------------------------------------------------


def test_pdr1_ingests_spectra_by_detectid_without_pictures_and_keeps_p_cnn(tmp_path):
    s, out = _files(tmp_path)
    with fits.open(out["catalogue"]) as cat, fits.open(out["spectra"]) as sp:
        cat_ids = np.asarray(cat[1].data["detectid"])
        spec_ids = np.asarray(sp["INFO"].data["detectid"])
        p_cnn = dict(zip(cat_ids.tolist(), np.asarray(cat[1].data["p_cnn"]).tolist(), strict=True))
        cont = dict(
            zip(cat_ids.tolist(), np.asarray(cat[1].data["continuum"]).tolist(), strict=True)
        )
        spec = np.asarray(sp["SPEC"].data)
    assert not np.array_equal(cat_ids, spec_ids)  # another order: pairing by row would fail
    result = _ingest(out)
    batch = result.batch
    assert batch.file_format == "pdr1" and batch.n_candidates == len(s)
    assert any("no cutout in this data product" in n for n in result.notes), result.notes
    cands = list(Candidate.objects.filter(batch=batch))
    assert len(cands) == len(s)
    # no picture: never served to volunteers, flagged as such (not as a failed extraction)
    assert {c.cutout_flags for c in cands} == {NO_CUTOUT | NOT_IN_PRODUCT}
    assert {c.status for c in cands} == {Candidate.Status.EXPERT}
    assert not queue_queryset(volunteer=None).filter(batch=batch).exists()
    assert describe(cands[0].cutout_flags) == [
        "no cutout in this data product (catalogue and 1D spectrum only)"
    ]
    store = CutoutStore.open(batch.store_path)
    spec_row = {int(d): i for i, d in enumerate(spec_ids)}
    for c in cands:
        # the candidate's own spectrum, found through INFO's detectid
        np.testing.assert_allclose(
            np.asarray(store.spec[c.row, 0], np.float32), spec[spec_row[c.detectid]], rtol=2e-3,
            atol=2e-3,
        )  # fmt: skip
        assert np.isnan(np.asarray(store.cutouts[c.row], np.float32)).all()  # masked, not sky
        if cont[c.detectid] == -999.0:
            assert c.continuum is None  # a sentinel is a missing value, never a number
    scores = {
        d: v
        for d, v in ExternalScore.objects.filter(source=PDR1_SOURCE, name="p_cnn").values_list(
            "candidate__detectid", "value"
        )
    }
    assert set(scores) == set(cat_ids.tolist())
    n_missing = 0
    for d, v in scores.items():
        if p_cnn[d] == -999.0:
            assert v is None
            n_missing += 1
        else:
            assert v == pytest.approx(p_cnn[d], rel=1e-6)
    assert n_missing > 0  # the fixture has sentinels, so the test saw them


def test_pdr1_command_help_and_ingest(tmp_path, capsys):
    _, out = _files(tmp_path, n=12)
    buf = StringIO()
    with pytest.raises(SystemExit):
        call_command("ingest", "--help")
    help_text = capsys.readouterr().out
    assert "--spectra" in help_text and "PDR1" in help_text and "INFO, SPEC" in help_text
    call_command("ingest", str(out["catalogue"]), "--spectra", str(out["spectra"]),
                 "--no-progress", stdout=buf)  # fmt: skip
    assert Candidate.objects.count() == 12


def test_spectra_in_a_flux_unit_are_converted(tmp_path):
    _, out = _files(tmp_path, n=10)
    with fits.open(out["spectra"]) as sp:
        first = int(sp["INFO"].data["detectid"][0])
        raw = np.asarray(sp["SPEC"].data[0])

    def fn(hdul):
        hdul["SPEC"].header["BUNIT"] = "1e-18 erg/(s cm2 Angstrom)"

    _edit(out["spectra"], fn)
    batch = _ingest(out).batch
    c = Candidate.objects.get(detectid=first)
    store = CutoutStore.open(batch.store_path)
    np.testing.assert_allclose(np.asarray(store.spec[c.row, 0], np.float32), raw / 10, rtol=2e-3,
                               atol=2e-3)  # fmt: skip


# --- refused, with the rows named ---------------------------------------------------------


def test_repeated_id_in_info_is_refused(tmp_path, settings):
    _, out = _files(tmp_path)

    def fn(hdul):
        hdul["INFO"].data["detectid"][3] = hdul["INFO"].data["detectid"][4]

    _edit(out["spectra"], fn)
    _refused(out, settings, "HDU INFO column 'detectid' rows 3", "appear more than once")


def test_catalogue_row_without_spectrum_and_spectrum_without_row_are_refused(tmp_path, settings):
    _, out = _files(tmp_path)
    with fits.open(out["spectra"]) as sp:
        gone = int(sp["INFO"].data["detectid"][5])

    def fn(hdul):
        hdul["INFO"].data["detectid"][5] = 999999999

    _edit(out["spectra"], fn)
    msg = _refused(out, settings, "detectid has no row in hpsc2_spec.fits HDU INFO")
    assert f"(detectid {gone})" in msg and "row 5 (detectid 999999999)" in msg


def test_sentinel_in_a_required_column_is_refused_not_stored(tmp_path, settings):
    _, out = _files(tmp_path)
    with fits.open(out["catalogue"]) as cat:
        did = int(cat[1].data["detectid"][7])
    _set_cat(out["catalogue"], 7, sn=-999.0)
    _refused(out, settings, "column 'sn' row 7", f"detectid {did}", "sentinel")


def test_field_na_is_a_missing_value(tmp_path, settings):
    _, out = _files(tmp_path)
    _set_cat(out["catalogue"], 2, field="n/a")
    _refused(out, settings, "column 'field' row 2", "missing")


def test_p_cnn_outside_0_1_is_refused(tmp_path, settings):
    _, out = _files(tmp_path, rates={"p_cnn": 0.0})
    _set_cat(out["catalogue"], 9, p_cnn=1.7)
    _refused(out, settings, "column 'p_cnn' row 9", "not a probability")


def test_wrong_hdu_name_is_refused(tmp_path, settings):
    _, out = _files(tmp_path)

    def fn(hdul):
        hdul["SPEC"].name = "FLUX"

    _edit(out["spectra"], fn)
    _refused(out, settings, "lacks HDU(s) ['SPEC']")


def test_two_hdus_of_the_same_name_are_refused(tmp_path, settings):
    _, out = _files(tmp_path)

    def fn(hdul):
        extra = hdul["SPEC"].copy()
        extra.data = np.zeros_like(extra.data)
        hdul.append(extra)

    _edit(out["spectra"], fn)
    _refused(out, settings, "['SPEC'] appear more than once")


def test_another_wavelength_grid_is_refused(tmp_path, settings):
    _, out = _files(tmp_path)

    def fn(hdul):
        hdul["WAVELENGTH"].data = hdul["WAVELENGTH"].data + 1.0

    _edit(out["spectra"], fn)
    _refused(out, settings, "HDU WAVELENGTH: is not HETDEX's grid")


def test_spectra_that_are_not_a_flux_density_are_refused(tmp_path, settings):
    _, out = _files(tmp_path)

    def fn(hdul):
        hdul["SPEC"].header["BUNIT"] = "erg/(s cm2)"

    _edit(out["spectra"], fn)
    _refused(out, settings, "BUNIT 'erg/(s cm2)' is not a flux density")


def test_spectra_with_catalogue_and_survey_is_refused(tmp_path, settings):
    _, out = _files(tmp_path, n=5)
    with pytest.raises(IngestError, match="cannot be combined"):
        ingest_survey(
            path=out["catalogue"],
            spectra=out["spectra"],
            catalogue=out["catalogue"],
            survey=out["catalogue"],
        )
    _nothing_written(settings)


def test_extra_catalogue_columns_are_ignored_and_sentinels_are_missing(tmp_path):
    """HPSC-2 carries more columns than are read; their values (sentinels, text, names that
    differ only in case) do not matter. -999.999 in a Float32 apcor is missing (NULL)."""
    _, out = _files(tmp_path, rates={})

    def add_columns(hdul):
        table = hdul[1]
        n = len(table.data)
        extra = [
            fits.Column(name="flag", format="K", array=np.full(n, -999)),
            fits.Column(name="FLAG", format="E", array=np.full(n, -999.0, np.float32)),
            fits.Column(name="comment", format="8A", array=np.array(["n/a"] * n)),
            fits.Column(name="gmag", format="D", array=np.full(n, np.inf)),
        ]
        hdul[1] = fits.BinTableHDU.from_columns(table.columns + fits.ColDefs(extra))
        hdul[1].data["apcor"][3] = np.float32(-999.999)

    _edit(out["catalogue"], add_columns)
    with fits.open(out["catalogue"]) as cat:
        did = int(cat[1].data["detectid"][3])
        assert "FLAG" in cat[1].columns.names
    result = _ingest(out)
    assert result.batch.n_candidates == 40
    assert Candidate.objects.get(detectid=did).apcor is None
    assert Candidate.objects.exclude(detectid=did).filter(apcor__isnull=True).count() == 0
