"""FITS and HDF5 survey files round-trip; readers are lazy and accept HETDEX-style layouts."""

import json

import h5py
import numpy as np
import pytest
from astropy.io import fits

from mlcore.survey import ARRAY_SHAPES, CATALOG_COLUMNS, TRUTH_COLUMNS
from mlcore.survey_io import (
    SurveyFileError,
    open_survey,
    read_external,
    read_survey,
    sniff_format,
    write_external,
    write_survey,
)
from tests.factories import make_survey


def _assert_same(a, b):
    for col in CATALOG_COLUMNS:
        np.testing.assert_array_equal(a.catalog[col], b.catalog[col], err_msg=col)
    for col in TRUTH_COLUMNS:
        np.testing.assert_array_equal(a.truth[col], b.truth[col], err_msg=col)
    for name in ARRAY_SHAPES:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("suffix", [".fits", ".h5"])
def test_round_trip_keeps_every_column_array_and_truth(tmp_path, suffix):
    survey = make_survey(25, seed=1)
    path = write_survey(tmp_path / f"s{suffix}", survey)
    back = read_survey(path)
    _assert_same(survey, back)
    assert back.meta == survey.meta


def test_fits_layout_has_named_hdus_and_header_metadata(fits_file):
    with fits.open(fits_file) as hdul:
        names = [h.name for h in hdul]
        assert names[1:] == [
            "CATALOG", "IM_SUM", "IM_ARRAY", "IM_WAVE", "SPEC1D", "SPEC1D_ERR", "IM_DETECTID"
        ]  # fmt: skip
        assert hdul["IM_ARRAY"].data.shape == (40, 4, 9, 100)
        assert hdul[0].header["SIMVERS"] == "test-factory"
        assert json.loads(hdul[0].header["SIMMETA"])["seed"] == 3
        assert hdul["CATALOG"].columns["detectid"].format == "K"  # int64


def test_hdf5_layout_matches_hetdex_ml_file(hdf5_file):
    with h5py.File(hdf5_file) as h5:
        assert {"Detections", "FiberImages", "Spec1D"} <= set(h5)
        assert h5["FiberImages"].dtype["im_array"].shape == (4, 9, 100)
        assert h5["Spec1D"].dtype["spec1D"].shape == (1036,)
        assert h5.attrs["SIMVERS"] == "test-factory"


def test_hdf5_groups_of_plain_datasets_are_read_too(tmp_path, survey):
    """Files written by other tools may use groups of datasets instead of PyTables tables."""
    path = tmp_path / "groups.h5"
    with h5py.File(path, "w") as h5:
        det = h5.create_group("Detections")
        for col in CATALOG_COLUMNS:
            data = survey.catalog[col]
            det[col] = data.astype("S12") if data.dtype.kind == "U" else data
        fib = h5.create_group("FiberImages")
        fib["detectid"] = survey.catalog["detectid"]
        fib["im_wave"], fib["im_sum"], fib["im_array"] = (
            survey.im_wave,
            survey.im_sum,
            survey.im_array,
        )
        spec = h5.create_group("Spec1D")
        spec["spec1D"], spec["spec1D_err"] = survey.spec1d, survey.spec1d_err
    back = read_survey(path)
    np.testing.assert_array_equal(back.im_array, survey.im_array)
    np.testing.assert_array_equal(back.catalog["field"], survey.catalog["field"])
    assert back.truth is None


@pytest.mark.parametrize("suffix", [".fits", ".h5"])
def test_reader_reads_chunks_without_loading_everything(tmp_path, suffix):
    survey = make_survey(30, seed=2)
    path = write_survey(tmp_path / f"s{suffix}", survey)
    with open_survey(path) as reader:
        chunks = list(reader.iter_chunks(12))
    assert [(a, b) for a, b, _ in chunks] == [(0, 12), (12, 24), (24, 30)]
    np.testing.assert_array_equal(chunks[1][2]["im_sum"], survey.im_sum[12:24])
    np.testing.assert_array_equal(chunks[2][2]["spec1d_err"], survey.spec1d_err[24:])


def test_sniffing_uses_content_not_suffix(tmp_path, survey):
    path = write_survey(tmp_path / "really_hdf5.fits", survey, fmt="hdf5")
    assert sniff_format(path) == "hdf5"
    text = tmp_path / "notes.fits"
    text.write_text("hello, I am not a survey")
    with pytest.raises(SurveyFileError, match="not a FITS or HDF5 file"):
        sniff_format(text)


def test_write_is_atomic_no_partial_file_left(tmp_path, survey):
    path = write_survey(tmp_path / "s.fits", survey)
    assert path.exists()
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("suffix", [".fits", ".csv"])
def test_external_catalogue_round_trip(tmp_path, suffix):
    ext = {
        "ra": np.array([150.1, 150.2]),
        "dec": np.array([2.1, 2.2]),
        "z": np.array([2.1, 3.0], np.float32),
        "quality": np.array([0, 1], np.int16),
    }
    back = read_external(write_external(tmp_path / f"ext{suffix}", ext))
    for key, values in ext.items():
        np.testing.assert_allclose(back[key], values, rtol=1e-6)


def test_external_catalogue_without_redshift_is_refused(tmp_path):
    path = tmp_path / "ext.csv"
    path.write_text("ra,dec\n150.1,2.1\n")
    with pytest.raises(SurveyFileError, match="lacks column"):
        read_external(path)
