import json

import numpy as np

from mlcore.cnn.pipeline import make_splits
from mlcore.survey_io import write_external, write_survey
from mlcore.train import main
from tests.factories import make_survey


def test_cli_trains_and_writes_weights_card_and_attributions(tmp_path, capsys):
    survey = make_survey(240, seed=1)
    data = write_survey(tmp_path / "s.fits", survey)
    other = write_survey(tmp_path / "goods.h5", make_survey(60, seed=5, field="goods-n"))
    real = np.flatnonzero(survey.truth["truth_real"])
    ext = {
        "ra": survey.catalog["ra"][real],
        "dec": survey.catalog["dec"][real],
        "z": survey.truth["truth_z"][real],
        "quality": np.zeros(len(real), np.int16),
    }
    ext_file = write_external(tmp_path / "desi.fits", ext)
    out = tmp_path / "model"
    rc = main(
        [
            "--data",
            str(data),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--width",
            "4",
            "--threads",
            "1",
            "--attributions",
            "2",
            "--seed",
            "3",
            "--external",
            str(ext_file),
            "--eval-data",
            str(other),
        ]
    )
    assert rc == 0
    card = json.loads((out / "model_card.json").read_text())
    assert (out / "model.pt").exists()
    assert card["label_source"] == "truth" and card["seed"] == 3
    assert card["model_config"]["spec_len"] == 200  # 1D branch on by default
    m = card["metrics"]
    assert card["n_train"] + card["n_val"] + m["n_test"] == 240
    assert set(m["regimes"]) == {"overall", "high", "low"}
    assert "cosmos" in m["fields"] and "lae" in m["types"]
    # every external source matches its own candidate when that candidate is in the test set
    n_test_real = int(sum(m["regimes"]["overall"][k] for k in ("tp", "fn")))
    assert m["external"]["overall"]["n_matched"] == n_test_real
    assert m["other_files"][str(other)]["n_test"] == 60
    assert "goods-n" in m["other_files"][str(other)]["fields"]
    assert len(list((out / "attributions").glob("*.png"))) == 2
    assert "bacc" in capsys.readouterr().out


def test_cli_takes_volunteer_labels_with_weights(tmp_path):
    survey = make_survey(200, seed=2)
    data = write_survey(tmp_path / "s.h5", survey)
    ids = survey.catalog["detectid"][:150]
    np.savez(
        tmp_path / "labels.npz",
        detectid=ids,
        p_real=np.linspace(0, 1, 150),
        weight=np.full(150, 0.5),
    )
    main(
        [
            "--data",
            str(data),
            "--out",
            str(tmp_path / "m"),
            "--epochs",
            "1",
            "--width",
            "4",
            "--labels",
            str(tmp_path / "labels.npz"),
        ]
    )
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["label_source"] == "volunteer:labels.npz"
    assert card["n_train"] + card["n_val"] + card["metrics"]["n_test"] == 150


def test_splits_keep_one_test_set_across_training_sizes():
    rng = np.random.default_rng(0)
    y = (rng.random(5000) < 0.6).astype(np.float32)
    sn = rng.uniform(4.8, 8, 5000)
    tr1, va1, te1 = make_splits(y, sn, test_frac=0.2, val_frac=0.15, max_train=500, seed=0)
    tr2, va2, te2 = make_splits(y, sn, test_frac=0.2, val_frac=0.15, max_train=None, seed=0)
    assert np.array_equal(te1, te2)
    assert abs(len(tr1) - 500) <= 4 and len(tr2) > 3000
    for a, b in ((tr1, va1), (tr1, te1), (va1, te1)):
        assert len(np.intersect1d(a, b)) == 0


def test_bad_labels_raise_a_library_error_and_the_cli_says_so(tmp_path, capsys):
    """Library code raises (the platform and notebooks catch it); only the CLI exits."""
    import pytest

    from mlcore.cnn.pipeline import PipelineConfig, run
    from mlcore.errors import LabelsError

    data = write_survey(tmp_path / "s.fits", make_survey(40, seed=1))
    missing = str(tmp_path / "missing.npz")
    with pytest.raises(LabelsError, match="no such file"):
        run(PipelineConfig(data=str(data), out=str(tmp_path / "m"), labels=missing))
    rc = main(["--data", str(data), "--out", str(tmp_path / "m"), "--labels", missing])
    assert rc == 2 and "no such file" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
