"""``python -m mlcore.score`` (issue #27): a store, a FITS file and HETDEX's three files in,
a FITS/ECSV table out with the values ``mlcore.cnn.scoring.score`` gives."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from astropy.table import Table

from mlcore.cnn.card import save_checkpoint
from mlcore.cnn.model import CNNConfig, LineCNN
from mlcore.cnn.scoring import cpu_bfloat16_native, score, score_store
from mlcore.score import main
from mlcore.simulator import simulate_survey
from mlcore.store import CutoutStore, StoreWriter
from mlcore.survey import stack_cutouts
from mlcore.survey_io import write_survey

N, BATCH, T = 70, 32, 6  # three batches, the last one short


@pytest.fixture(scope="module")
def survey():
    s = simulate_survey(N, seed=11)
    # ids in no particular order, so a positional mix-up would show
    s.catalog["detectid"] = np.random.default_rng(0).permutation(N).astype(np.int64) + 5_000_000
    return s


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(3)
    m = LineCNN(CNNConfig(width=4, hidden=8, dropout=0.3, spec_len=100)).eval()
    m.temperature.fill_(1.2)
    d = tmp_path_factory.mktemp("model")
    save_checkpoint(d / "model.pt", m)
    return d, m


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory, survey):
    d = tmp_path_factory.mktemp("stores") / "batch-a"
    w = StoreWriter(d, N, meta={"batch": "batch-a"}, detectid=survey.catalog["detectid"])
    w.write(
        0,
        im_sum=survey.im_sum,
        im_array=survey.im_array,
        im_wave=survey.im_wave,
        spec1d=survey.spec1d,
        spec1d_err=survey.spec1d_err,
    )
    w.commit()
    return d


def _args(model_dir, out, *src):
    return ["--model", str(model_dir), *src, "--out", str(out), "--T", str(T)] + [
        "--batch",
        str(BATCH),
    ]


def test_store_scores_equal_score_called_directly(model_dir, store_dir, survey, tmp_path):
    d, m = model_dir
    out = tmp_path / "scores.fits"
    assert main(_args(d, out, "--store", str(store_dir))) == 0
    t = Table.read(out)
    np.testing.assert_array_equal(t["detectid"], survey.catalog["detectid"])
    np.testing.assert_array_equal(t["row"], np.arange(N))
    ref = score_store(m, CutoutStore.open(store_dir), n_samples=T, batch_size=BATCH)
    for k in ("prob", "entropy", "expected_entropy", "bald", "std", "masked_frac"):
        np.testing.assert_array_equal(np.asarray(t[k]), ref[k], err_msg=k)
    assert t["bald"].max() > 0  # real MC spread
    assert t.meta["NSAMPLES"] == T and t.meta["STBATCH"] == "batch-a"
    assert t.meta["PRECISN"] == "float32"


@pytest.mark.skipif(not cpu_bfloat16_native(), reason="no native bfloat16 on this CPU")
def test_bfloat16_store_scores_stay_close_and_say_so(model_dir, store_dir, tmp_path):
    d, m = model_dir
    out = tmp_path / "bf16.fits"
    assert main(_args(d, out, "--store", str(store_dir), "--precision", "bfloat16")) == 0
    t = Table.read(out)
    ref = score_store(m, CutoutStore.open(store_dir), n_samples=T, batch_size=BATCH)
    d_prob = np.abs(np.asarray(t["prob"]) - ref["prob"])
    assert 0 < d_prob.max() < 5e-3
    assert t.meta["PRECISN"] == "bfloat16"


def test_fits_file_scores_equal_score_called_directly(model_dir, survey, tmp_path):
    d, m = model_dir
    path = write_survey(tmp_path / "survey.fits", survey)
    out = tmp_path / "scores.ecsv"
    assert main(_args(d, out, "--data", str(path))) == 0
    t = Table.read(out)
    np.testing.assert_array_equal(t["detectid"], survey.catalog["detectid"])
    ref = score(
        m,
        stack_cutouts(survey.im_sum, survey.im_array),
        spec1d=survey.spec1d,
        spec1d_err=survey.spec1d_err,
        wave=survey.catalog["wave"],
        n_samples=T,
        batch_size=BATCH,
    )
    np.testing.assert_allclose(np.asarray(t["prob"]), ref["prob"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(t["bald"]), ref["bald"], rtol=1e-6, atol=1e-7)


def test_hetdex_ml_file_is_scored_in_its_own_row_order(model_dir, survey, tmp_path):
    from mlcore.hetdex_io import open_hetdex, write_hetdex

    d, m = model_dir
    p = write_hetdex(
        survey, tmp_path / "ml.h5", tmp_path / "cat.h5", tmp_path / "survey.h5", seed=1
    )
    out = tmp_path / "scores.fits"
    args = [
        "--data",
        str(p["ml"]),
        "--catalogue",
        str(p["catalogue"]),
        "--survey",
        str(p["survey"]),
    ]
    assert main(_args(d, out, *args)) == 0
    t = Table.read(out)
    with open_hetdex(p["ml"], p["catalogue"], p["survey"]) as r:
        ids = np.asarray(r.columns["detectid"])
        arr = {k: r.read(k, 0, r.n) for k in r.arrays}
        wave = np.asarray(r.columns["wave"])
    np.testing.assert_array_equal(t["detectid"], ids)
    assert sorted(ids) == sorted(survey.catalog["detectid"])  # every candidate, by id
    ref = score(
        m,
        stack_cutouts(arr["im_sum"], arr["im_array"]),
        spec1d=arr["spec1d"],
        spec1d_err=arr["spec1d_err"],
        wave=wave,
        n_samples=T,
        batch_size=BATCH,
    )
    np.testing.assert_allclose(np.asarray(t["prob"]), ref["prob"], rtol=1e-6, atol=1e-7)


def test_bad_input_exits_2_with_a_message_and_writes_nothing(
    model_dir, store_dir, tmp_path, capsys
):
    d, _ = model_dir
    out = tmp_path / "x.fits"
    assert main(_args(d, out, "--store", str(tmp_path / "nope"))) == 2
    assert "not a cutout store" in capsys.readouterr().err
    assert main(_args(tmp_path, out, "--store", str(store_dir))) == 2
    assert "no model.pt" in capsys.readouterr().err
    assert main(_args(d, tmp_path / "x.csv", "--store", str(store_dir))) == 2
    assert ".fits" in capsys.readouterr().err
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"SIMPLE  = garbage")
    assert main(_args(d, out, "--data", str(bad))) == 2
    assert "bad.fits" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit):  # argparse names the choices
        main(_args(d, out, "--store", str(store_dir), "--precision", "float16"))
    assert "float32" in capsys.readouterr().err and not out.exists()
    out.write_text("keep me")
    assert main(_args(d, out, "--store", str(store_dir))) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "keep me"


def test_runs_as_a_module_without_django(model_dir, store_dir, tmp_path):
    d, _ = model_dir
    out = tmp_path / "s.fits"
    code = (
        "import sys; from mlcore.score import main; rc = main(sys.argv[1:]); "
        "assert 'django' not in sys.modules, 'imported django'; sys.exit(rc)"
    )
    args = _args(d, out, "--store", str(store_dir))
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"scored {N}/{N}" in r.stderr  # progress on stderr
    assert len(Table.read(out)) == N
