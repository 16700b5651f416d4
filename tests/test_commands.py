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
