"""Pixels are joined to catalogue rows by detectid in every layout, never by row position.

Each test writes a simulated file, reorders or breaks the ids of one table, ingests it and
then checks, candidate by candidate, that the store row of each detectid holds *that*
detectid's pixels (a reordered table) or that the file is refused naming the rows (ids
that disagree), with nothing written.
"""

import h5py
import numpy as np
import pytest
from astropy.io import fits

from labelapp.models import Candidate
from labelapp.services.survey.ingest import IngestError, ingest_survey
from mlcore.store import CutoutStore
from mlcore.survey_io import write_survey
from tests.factories import make_survey
from tests.ingest_checks import assert_nothing_written

pytestmark = pytest.mark.django_db


def _assert_paired_by_id(batch, survey):
    """Every candidate's store row holds the pixels the survey gave its detectid."""
    store = CutoutStore.open(batch.store_path)
    by_id = {int(d): i for i, d in enumerate(survey.catalog["detectid"])}
    cands = list(Candidate.objects.filter(batch=batch))
    assert len(cands) == len(survey)
    for c in cands:
        i = by_id[c.detectid]
        np.testing.assert_allclose(store.cutouts[c.row, 0], survey.im_sum[i], rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(
            store.cutouts[c.row, 1:], survey.im_array[i], rtol=2e-3, atol=2e-3
        )
        np.testing.assert_array_equal(store.im_wave[c.row], survey.im_wave[i])
        np.testing.assert_allclose(store.spec[c.row, 0], survey.spec1d[i], rtol=2e-3, atol=2e-3)
        assert c.wave == pytest.approx(float(survey.catalog["wave"][i]), rel=1e-6)


def _nothing_written(settings):
    assert_nothing_written(settings)


def _permute_h5_table(path, node, perm):
    with h5py.File(path, "r+") as h5:
        data = h5[node][()]
        h5[node][...] = data[perm]


def _set_h5_id(path, node, row, value):
    with h5py.File(path, "r+") as h5:
        rec = h5[node][row]
        rec["detectid"] = value
        h5[node][row] = rec


# --- the project's HDF5 layout -----------------------------------------------------------


@pytest.mark.parametrize("node", ["FiberImages", "Spec1D", "both"])
def test_hdf5_tables_in_another_order_are_joined_by_detectid(tmp_path, node):
    s = make_survey(30, seed=4)
    path = write_survey(tmp_path / "s.h5", s)
    rng = np.random.default_rng(1)
    for n in ("FiberImages", "Spec1D") if node == "both" else (node,):
        _permute_h5_table(path, n, rng.permutation(len(s)))
    batch = ingest_survey(path=path, chunk=7).batch
    _assert_paired_by_id(batch, s)


def test_hdf5_reversed_rows_are_joined_by_detectid(tmp_path):
    s = make_survey(20, seed=5)
    path = write_survey(tmp_path / "rev.h5", s)
    _permute_h5_table(path, "FiberImages", np.arange(len(s))[::-1])
    _permute_h5_table(path, "Spec1D", np.arange(len(s))[::-1])
    _assert_paired_by_id(ingest_survey(path=path, chunk=6).batch, s)


@pytest.mark.parametrize("node", ["FiberImages", "Spec1D"])
def test_hdf5_table_with_an_id_absent_from_the_catalogue_is_refused_naming_it(
    tmp_path, settings, node
):
    s = make_survey(12, seed=6)
    path = write_survey(tmp_path / "odd.h5", s)
    _set_h5_id(path, node, 5, 77)
    with pytest.raises(IngestError) as info:
        ingest_survey(path=path)
    msg = str(info.value)
    assert f"/{node} column 'detectid'" not in msg or "77" in msg
    assert f"/{node} row 5 (detectid 77): detectid has no row in /Detections" in msg, msg
    assert f"(detectid {int(s.catalog['detectid'][5])}): detectid has no row in /{node}" in msg
    _nothing_written(settings)


def test_hdf5_table_with_a_repeated_id_is_refused(tmp_path, settings):
    s = make_survey(12, seed=6)
    path = write_survey(tmp_path / "rep.h5", s)
    _set_h5_id(path, "Spec1D", 4, int(s.catalog["detectid"][9]))
    with pytest.raises(IngestError, match=r"/Spec1D column 'detectid' rows 4 .*, 9 .*more than"):
        ingest_survey(path=path)
    _nothing_written(settings)


def test_hdf5_groups_without_ids_are_paired_by_row_and_say_so(tmp_path):
    s = make_survey(10, seed=2)
    path = tmp_path / "groups.h5"
    with h5py.File(path, "w") as h5:
        det = h5.create_group("Detections")
        for k, v in s.catalog.items():
            det.create_dataset(k, data=v.astype("S12") if v.dtype.kind == "U" else v)
        fib = h5.create_group("FiberImages")
        for k in ("im_wave", "im_sum", "im_array"):
            fib.create_dataset(k, data=getattr(s, k))
        spec = h5.create_group("Spec1D")
        spec.create_dataset("spec1D", data=s.spec1d)
        spec.create_dataset("spec1D_err", data=s.spec1d_err)
    result = ingest_survey(path=path)
    assert "/FiberImages has no detectid" in result.message
    assert "/Spec1D has no detectid" in result.message


# --- the project's FITS layout -----------------------------------------------------------


def _rewrite_fits_images(path, perm, ids=None):
    with fits.open(path) as hdul:
        hdus = [hdul[0].copy(), hdul["CATALOG"].copy()]
        for h in hdul[2:]:
            data = h.data[perm] if h.name != "IM_DETECTID" or ids is None else ids
            if h.name == "IM_DETECTID" and ids is None:
                data = h.data[perm]
            hdus.append(fits.ImageHDU(data, name=h.name))
        fits.HDUList(hdus).writeto(path, overwrite=True)


def test_fits_images_in_another_order_are_joined_by_detectid(tmp_path):
    s = make_survey(25, seed=8)
    path = write_survey(tmp_path / "perm.fits", s)
    _rewrite_fits_images(path, np.random.default_rng(3).permutation(len(s)))
    _assert_paired_by_id(ingest_survey(path=path, chunk=4).batch, s)


def test_fits_image_ids_that_disagree_with_the_catalogue_are_refused(tmp_path, settings):
    s = make_survey(10, seed=8)
    path = write_survey(tmp_path / "bad.fits", s)
    ids = s.catalog["detectid"].copy()
    ids[3] = 5
    _rewrite_fits_images(path, np.arange(len(s)), ids=ids)
    with pytest.raises(IngestError) as info:
        ingest_survey(path=path)
    msg = str(info.value)
    assert "HDU IM_DETECTID row 3 (detectid 5): detectid has no row in HDU CATALOG" in msg
    assert f"HDU CATALOG row 3 (detectid {int(s.catalog['detectid'][3])})" in msg
    _nothing_written(settings)


def test_fits_without_image_ids_is_paired_by_row_and_says_so(tmp_path):
    s = make_survey(10, seed=9)
    path = write_survey(tmp_path / "old.fits", s)
    with fits.open(path) as hdul:
        fits.HDUList([h.copy() for h in hdul if h.name != "IM_DETECTID"]).writeto(
            path, overwrite=True
        )
    result = ingest_survey(path=path)
    assert "no IM_DETECTID HDU" in result.message
    _assert_paired_by_id(result.batch, s)


def test_fits_with_two_hdus_of_one_name_is_refused(tmp_path, settings):
    s = make_survey(10, seed=9)
    path = write_survey(tmp_path / "twice.fits", s)
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
        hdus.append(fits.ImageHDU(np.zeros_like(hdul["IM_SUM"].data), name="IM_SUM"))
        fits.HDUList(hdus).writeto(path, overwrite=True)
    with pytest.raises(IngestError, match=r"HDU name\(s\) \['IM_SUM'\] appear more than once"):
        ingest_survey(path=path)
    _nothing_written(settings)
