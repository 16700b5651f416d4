"""The simulate_survey command writes files that read back and ingest, in both formats."""

import json

import numpy as np
import pytest
from astropy.io import fits
from django.core.management import call_command
from django.core.management.base import CommandError

from labelapp.models import Candidate, CandidateTruth
from mlcore.survey_io import read_external, read_survey


@pytest.mark.django_db
@pytest.mark.parametrize("fmt,suffix", [("fits", ".fits"), ("hdf5", ".h5")])
def test_simulate_then_ingest(tmp_path, capsys, fmt, suffix):
    out = tmp_path / f"sim{suffix}"
    call_command(
        "simulate_survey",
        "--n",
        "300",
        "--seed",
        "4",
        "--field",
        "goods-n",
        "--out",
        str(out),
        "--format",
        fmt,
        "--no-progress",
    )
    assert f"Wrote 300 candidates (goods-n, seed 4) to {out}" in capsys.readouterr().out
    survey = read_survey(out)
    assert len(survey) == 300 and set(survey.catalog["field"]) == {"goods-n"}
    assert survey.meta["seed"] == 4 and survey.meta["simulator_version"]
    external = read_external(tmp_path / "sim_external.fits")
    assert len(external["ra"]) > 0
    call_command("ingest", str(out), "--no-progress")
    assert Candidate.objects.count() == 300
    assert CandidateTruth.objects.filter(is_real=True).count() == int(
        survey.truth["truth_real"].sum()
    )


def test_fits_header_carries_simulator_version_and_parameters(tmp_path):
    out = tmp_path / "sim.fits"
    call_command("simulate_survey", "--n", "100", "--seed", "2", "--out", str(out), "--no-progress")
    header = fits.getheader(out)
    meta = json.loads(header["SIMMETA"])
    assert header["SIMVERS"] == meta["simulator_version"]
    assert header["SIMSEED"] == 2 and header["SIMFIELD"] == "cosmos"
    assert len(meta) > 10  # the parameters, not only the version


def test_simulated_survey_round_trips_bit_for_bit(tmp_path):
    from mlcore.simulator import simulate_survey
    from mlcore.survey_io import write_survey

    survey = simulate_survey(150, seed=9, field="dex-fall")
    for suffix in (".fits", ".h5"):
        back = read_survey(write_survey(tmp_path / f"s{suffix}", survey))
        np.testing.assert_array_equal(back.im_array, survey.im_array)
        np.testing.assert_array_equal(back.catalog["sn"], survey.catalog["sn"])
        np.testing.assert_array_equal(back.truth["truth_type"], survey.truth["truth_type"])


def test_simulate_rejects_a_non_positive_count(tmp_path):
    with pytest.raises(CommandError, match="--n must be a positive number"):
        call_command("simulate_survey", "--n", "0", "--out", str(tmp_path / "x.fits"))


@pytest.mark.django_db
def test_simulate_pdr1_writes_the_public_pair_that_ingests(tmp_path, capsys):
    from astropy.io import fits

    from labelapp.models import ExternalScore

    call_command(
        "simulate_survey", "--n", "300", "--seed", "5", "--out", str(tmp_path / "pub.fits"),
        "--format", "pdr1", "--no-progress",
    )  # fmt: skip
    said = capsys.readouterr().out
    cat, spec = tmp_path / "pub_hpsc2.fits", tmp_path / "pub_spectra.fits"
    assert f"{cat} --spectra {spec}" in said
    with fits.open(spec) as hdul:
        assert [h.name for h in hdul][1:] == ["INFO", "SPEC", "SPEC_ERR", "WAVELENGTH"]
    with fits.open(cat) as hdul:
        assert {"RA", "DEC", "detectid", "p_cnn", "p_conf"} <= set(hdul[1].columns.names)
    call_command("ingest", str(cat), "--spectra", str(spec), "--no-progress")
    said = capsys.readouterr().out
    assert "Ingested 300 candidates" in said and "no cutout in this data product" in said
    assert set(Candidate.objects.values_list("status", flat=True)) == {"expert"}
    assert ExternalScore.objects.filter(name="p_cnn").count() == 300


@pytest.mark.django_db
def test_simulate_hetdex_writes_the_three_real_files_that_ingest(tmp_path, capsys):
    import h5py

    out = tmp_path / "hdr.h5"
    call_command(
        "simulate_survey", "--n", "1500", "--seed", "3", "--out", str(out), "--format",
        "hetdex", "--catalogue-factor", "5", "--no-progress",
    )  # fmt: skip
    said = capsys.readouterr().out
    ml, cat, sv = (tmp_path / f"hdr_{k}.h5" for k in ("ml", "detect", "survey"))
    assert f"{ml} --catalogue {cat} --survey {sv}" in said
    with h5py.File(ml, "r") as h5:
        assert sorted(h5) == ["FiberImages", "Spec1D"]  # no /Detections, as the real file
        fib = h5["FiberImages"]
        assert fib.dtype["im_array"].shape == (4, 9, 100) and len(fib) == 1500
        shots = h5["Spec1D"].fields("detectid")[()]
        im_wave = fib.fields("im_wave")[()]
    with h5py.File(cat, "r") as h5:
        det = h5["Detections"]
        assert len(det) == 7500 and det.dtype["ra"] == np.float32 and "field" not in det.dtype.names
        cat_ids = det.fields("detectid")[()]
    assert np.all(np.diff(cat_ids) > 0) and not np.all(np.diff(shots) > 0)  # two orders
    # im_wave is the native CCD grid, not a clean 2 A one; some columns are edge padding
    real = im_wave[(im_wave > 0).all(axis=1)]
    assert np.ptp(np.diff(real, axis=1)) > 1e-3
    assert ((im_wave == 0).any(axis=1) & (im_wave > 0).any(axis=1)).sum() > 0
    call_command("ingest", str(ml), "--catalogue", str(cat), "--survey", str(sv), "--no-progress")
    said = capsys.readouterr().out
    assert "Ingested 1500 candidates" in said and "padded columns" in said
    assert Candidate.objects.count() == 1500
    assert Candidate.objects.exclude(cutout_flags=0).exists()
    assert set(Candidate.objects.values_list("field", flat=True)) == {"cosmos"}
    assert CandidateTruth.objects.count() == 1500
