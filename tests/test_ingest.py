"""Ingest: atomic, idempotent, and every bad file refused with a message naming where.

Each bad-input test asserts the message and that nothing was written (no rows, no store).
"""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from django.core.management import call_command
from django.core.management.base import CommandError

from labelapp.models import Candidate, CandidateTruth, IngestBatch
from labelapp.services.survey.ingest import IngestError, ingest_survey
from mlcore.store import CutoutStore
from mlcore.survey_io import write_survey
from tests.factories import make_survey
from tests.ingest_checks import assert_nothing_written, assert_refused

pytestmark = pytest.mark.django_db


def _nothing_written(settings):
    assert_nothing_written(settings)


def _refused(path, settings, *fragments, **kw):
    return assert_refused(lambda: ingest_survey(path=path, **kw), settings, *fragments)


def _rewrite_fits(path, edit):
    """Open a written FITS file, let ``edit(hdul)`` return a new HDU list, write it back."""
    with fits.open(path) as hdul:
        hdus = edit(hdul)
        fits.HDUList(hdus).writeto(path, overwrite=True)


# --- the good path ------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["fits_file", "hdf5_file"])
def test_ingest_writes_rows_truth_and_store(request, settings, survey, fixture):
    path = request.getfixturevalue(fixture)
    result = ingest_survey(path=path, chunk=16)
    assert result.created
    batch = result.batch
    assert batch.n_candidates == len(survey) == Candidate.objects.count()
    assert batch.file_format == ("fits" if fixture == "fits_file" else "hdf5")
    assert CandidateTruth.objects.filter(is_real=True).count() == int(
        survey.truth["truth_real"].sum()
    )
    store = CutoutStore.open(batch.store_path)
    cand = Candidate.objects.get(detectid=survey.catalog["detectid"][17])
    assert cand.row == 17 and cand.field == "cosmos"
    assert cand.wave == pytest.approx(float(survey.catalog["wave"][17]), rel=1e-6)
    # float16 store: equal to the file within float16 rounding (~1e-3 relative)
    np.testing.assert_allclose(store.cutouts[17, 0], survey.im_sum[17], rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(store.cutouts[17, 1:], survey.im_array[17], rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(store.spec[17, 1], survey.spec1d_err[17], rtol=2e-3)
    np.testing.assert_array_equal(store.im_wave[17], survey.im_wave[17])
    assert batch.header_meta["simulator_version"] == "test-factory"
    # the store is joinable by id without the database: its rows are the candidates' rows
    np.testing.assert_array_equal(store.detectid, survey.catalog["detectid"])
    assert store.rows_of([cand.detectid])[0] == cand.row


def test_reingesting_the_same_file_changes_nothing_and_says_so(fits_file):
    first = ingest_survey(path=fits_file)
    store_files = sorted(p.name for p in Path(first.batch.store_path).iterdir())
    again = ingest_survey(path=fits_file)
    assert not again.created
    assert again.batch.pk == first.batch.pk
    assert "already ingested" in again.message and "nothing changed" in again.message
    assert IngestBatch.objects.count() == 1
    assert Candidate.objects.count() == 40
    assert sorted(p.name for p in Path(first.batch.store_path).iterdir()) == store_files


def test_float32_store_is_exact(fits_file, survey):
    batch = ingest_survey(path=fits_file, store_dtype="float32").batch
    store = CutoutStore.open(batch.store_path)
    assert store.cutouts.dtype == np.float32
    np.testing.assert_array_equal(store.cutouts[:, 0], survey.im_sum)


def test_two_files_make_two_batches(tmp_path):
    a = write_survey(tmp_path / "a.fits", make_survey(10, seed=1, first_id=1))
    b = write_survey(tmp_path / "b.h5", make_survey(10, seed=2, first_id=100))
    ingest_survey(path=a)
    ingest_survey(path=b)
    assert IngestBatch.objects.count() == 2 and Candidate.objects.count() == 20


def test_nan_policy_zero_stores_masked_pixels_as_zero(tmp_path, settings):
    s = make_survey(10)
    s.im_array[4, 2, 3, 7] = np.nan
    path = write_survey(tmp_path / "nan.fits", s)
    result = ingest_survey(path=path, nan_policy="zero")
    store = CutoutStore.open(result.batch.store_path)
    assert store.cutouts[4, 3, 3, 7] == 0
    assert result.batch.nan_pixels_zeroed == 1
    assert "1 NaN pixels stored as 0" in result.message


def test_float16_overflow_is_clipped_and_reported(tmp_path):
    s = make_survey(5)
    s.im_sum[1, 4, 50] = 1e6  # a meteor brighter than float16 can hold
    result = ingest_survey(path=write_survey(tmp_path / "bright.fits", s))
    store = CutoutStore.open(result.batch.store_path)
    assert np.isfinite(store.cutouts[1, 0, 4, 50]) and store.cutouts[1, 0, 4, 50] > 6e4
    assert "clipped" in result.message


def test_ingest_command_prints_summary_and_is_idempotent(fits_file, capsys):
    call_command("ingest", str(fits_file), "--no-progress")
    assert "Ingested 40 candidates" in capsys.readouterr().out
    call_command("ingest", str(fits_file), "--no-progress")
    assert "nothing changed" in capsys.readouterr().out


def test_ingest_command_exits_nonzero_with_the_problem(tmp_path, settings):
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"definitely not a survey")
    with pytest.raises(CommandError, match="not a FITS or HDF5 file"):
        call_command("ingest", str(bad), "--no-progress")
    _nothing_written(settings)


# --- bad input: one test per case -----------------------------------------------------------


def test_missing_file(tmp_path, settings):
    _refused(tmp_path / "nope.fits", settings, "cannot be read: No such file")


def test_not_a_survey_file(tmp_path, settings):
    path = tmp_path / "x.fits"
    path.write_text("SIMPLE? no, this is a text file")
    _refused(path, settings, "not a FITS or HDF5 file")


def test_truncated_fits(tmp_path, settings, fits_file):
    data = fits_file.read_bytes()
    path = tmp_path / "trunc.fits"
    path.write_bytes(data[: len(data) // 2])
    _refused(path, settings, "trunc.fits: file is truncated", "smaller than the expected size")


def test_truncated_hdf5(tmp_path, settings, hdf5_file):
    data = hdf5_file.read_bytes()
    path = tmp_path / "trunc.h5"
    path.write_bytes(data[: len(data) // 3])
    _refused(path, settings, "trunc.h5: cannot be opened as HDF5", "truncated file")


def test_missing_catalogue_column(settings, fits_file):
    def drop_sn(hdul):
        cols = [c for c in hdul["CATALOG"].columns if c.name != "sn"]
        return [hdul[0], fits.BinTableHDU.from_columns(cols, name="CATALOG"), *hdul[2:]]

    _rewrite_fits(fits_file, drop_sn)
    _refused(fits_file, settings, "HDU CATALOG column 'sn'", "missing")


def test_missing_image_hdu(settings, fits_file):
    _rewrite_fits(fits_file, lambda hdul: [h for h in hdul if h.name != "SPEC1D"])
    _refused(fits_file, settings, "HDU SPEC1D", "missing")


def test_wrong_dtype_of_detectid(settings, fits_file):
    def float_ids(hdul):
        data = hdul["CATALOG"].data
        cols = []
        for c in hdul["CATALOG"].columns:
            if c.name == "detectid":
                c = fits.Column(name="detectid", format="D", array=data["detectid"] + 0.5)
            cols.append(c)
        return [hdul[0], fits.BinTableHDU.from_columns(cols, name="CATALOG"), *hdul[2:]]

    _rewrite_fits(fits_file, float_ids)
    _refused(fits_file, settings, "column 'detectid'", "float64", "integer")


def test_wrong_dtype_of_image(settings, fits_file):
    def int_images(hdul):
        hdus = list(hdul)
        hdus[2] = fits.ImageHDU(hdul["IM_SUM"].data.astype(np.int32), name="IM_SUM")
        return hdus

    _rewrite_fits(fits_file, int_images)
    _refused(fits_file, settings, "HDU IM_SUM", "int32", "float32")


def test_wrong_image_shape(settings, fits_file):
    def three_fibers(hdul):
        hdus = list(hdul)
        hdus[3] = fits.ImageHDU(hdul["IM_ARRAY"].data[:, :3], name="IM_ARRAY")
        return hdus

    _rewrite_fits(fits_file, three_fibers)
    _refused(fits_file, settings, "HDU IM_ARRAY", "(40, 3, 9, 100)", "(40, 4, 9, 100)")


def test_image_rows_do_not_match_catalogue(settings, fits_file):
    def short(hdul):
        hdus = list(hdul)
        hdus[2] = fits.ImageHDU(hdul["IM_SUM"].data[:-1], name="IM_SUM")
        return hdus

    _rewrite_fits(fits_file, short)
    _refused(fits_file, settings, "HDU IM_SUM", "(39, 9, 100)", "N = 40 catalogue rows")


def test_nan_in_catalogue_column(tmp_path, settings):
    s = make_survey(10)
    s.catalog["flux"][6] = np.nan
    path = write_survey(tmp_path / "nanflux.fits", s)
    _refused(path, settings, "column 'flux' row 6 (detectid 1000006)", "NaN or infinite")


def test_inf_pixel(tmp_path, settings):
    s = make_survey(10)
    s.im_sum[8, 0, 0] = np.inf
    path = write_survey(tmp_path / "inf.fits", s)
    _refused(path, settings, "HDU IM_SUM row 8 (detectid 1000008)", "infinite")


def test_nan_pixel_refused_by_default(tmp_path, settings):
    s = make_survey(10)
    s.spec1d[2, 500] = np.nan
    path = write_survey(tmp_path / "nanpix.h5", s)
    _refused(path, settings, "/Spec1D/spec1D row 2 (detectid 1000002)", "--nan-policy zero")


def test_duplicate_detectid_in_file(tmp_path, settings):
    s = make_survey(10)
    s.catalog["detectid"][7] = s.catalog["detectid"][3]
    path = write_survey(tmp_path / "dup.fits", s)
    _refused(
        path, settings, "column 'detectid' rows 3 (detectid 1000003), 7", "appear more than once"
    )


def test_detectid_already_ingested_from_another_file(tmp_path, settings):
    ingest_survey(path=write_survey(tmp_path / "a.fits", make_survey(10, seed=1)))
    batches, rows = IngestBatch.objects.count(), Candidate.objects.count()
    path = write_survey(tmp_path / "b.fits", make_survey(10, seed=2))  # same ids, other bytes
    with pytest.raises(IngestError, match="already ingested from another file"):
        ingest_survey(path=path)
    assert (IngestBatch.objects.count(), Candidate.objects.count()) == (batches, rows)
    assert len(list(Path(settings.STORE_ROOT).iterdir())) == 1


def test_wavelength_outside_instrument_range(tmp_path, settings):
    s = make_survey(10)
    s.catalog["wave"][5] = 3300.0
    path = write_survey(tmp_path / "blue.fits", s)
    _refused(path, settings, "column 'wave' row 5", "3300.0 A is outside", "3470-5540")


def test_empty_catalogue(tmp_path, settings):
    path = write_survey(tmp_path / "empty.fits", make_survey(0))
    _refused(path, settings, "has no rows")


def test_unknown_truth_type(tmp_path, settings):
    s = make_survey(10)
    s.truth["truth_type"] = s.truth["truth_type"].astype("U12")
    s.truth["truth_type"][1] = "unicorn"
    path = write_survey(tmp_path / "truth.fits", s)
    _refused(path, settings, "column 'truth_type' row 1", "unknown type 'unicorn'")


def test_batch_name_must_be_a_slug(settings, fits_file):
    _refused(fits_file, settings, "not a valid batch name", batch_name="Bad Name!")


def test_batch_name_already_used(tmp_path, settings):
    ingest_survey(
        path=write_survey(tmp_path / "a.fits", make_survey(5, first_id=1)), batch_name="spring"
    )
    path = write_survey(tmp_path / "b.fits", make_survey(5, first_id=50))
    with pytest.raises(IngestError, match="already used by another file"):
        ingest_survey(path=path, batch_name="spring")
    assert Candidate.objects.count() == 5


def test_problems_are_all_listed_not_only_the_first(tmp_path, settings):
    s = make_survey(10)
    s.catalog["wave"][1] = 6000.0
    s.catalog["detectid"][2] = s.catalog["detectid"][3]
    path = write_survey(tmp_path / "many.fits", s)
    message = _refused(path, settings, "column 'wave'", "column 'detectid'")
    assert "2 problem(s)" in message


def test_failure_in_database_step_removes_the_store(tmp_path, settings, monkeypatch):
    """A crash after the pixels are written must leave neither rows nor store behind."""
    from labelapp.services.survey import ingest as ingest_module

    def boom(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(ingest_module, "_write_truth", boom)
    path = write_survey(tmp_path / "a.fits", make_survey(10))
    with pytest.raises(RuntimeError, match="database went away"):
        ingest_survey(path=path)
    _nothing_written(settings)


def test_new_candidates_enter_the_queue_low_sn_first(tmp_path):
    ingest_survey(path=write_survey(tmp_path / "a.fits", make_survey(20)))
    queue = list(
        Candidate.objects.filter(status=Candidate.Status.ACTIVE)
        .order_by("-priority")
        .values_list("sn", flat=True)
    )
    assert len(queue) == 20 and queue == sorted(queue)
