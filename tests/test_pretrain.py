"""Self-supervised pretraining (mlcore.cnn.pretrain) and its CLI: it learns, it saves a
versioned encoder with a card, and fine-tuning starts from the encoder's trunks."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mlcore.cnn import training
from mlcore.cnn.card import load_checkpoint, read_card, write_model_dir
from mlcore.cnn.data import spec_windows
from mlcore.cnn.model import CNNConfig, LineCNN
from mlcore.cnn.pretrain import (
    PretrainConfig,
    build_pretrain_card,
    contrastive_view,
    nt_xent,
    pretrain,
    trunk_state,
    with_fresh_head,
)
from mlcore.cnn.training import TrainConfig, train
from mlcore.survey import stack_cutouts
from mlcore.survey_io import write_survey
from mlcore.train import main
from tests.factories import make_survey

CFG = CNNConfig(width=4, spec_len=200)


@pytest.fixture(scope="module")
def arrays():
    s = make_survey(160, seed=2)
    cut = stack_cutouts(s.im_sum, s.im_array).astype(np.float16)
    spec = spec_windows(s.spec1d, s.spec1d_err, s.catalog["wave"], 100)
    return cut, spec, s.truth["truth_real"].astype(np.float32), s.catalog["sn"]


@pytest.mark.parametrize("approach", ["contrastive", "masked"])
def test_pretraining_lowers_its_loss_and_leaves_the_head_fresh(arrays, approach):
    cut, spec, _, _ = arrays
    cfg = PretrainConfig(approach=approach, epochs=6, batch_size=32, lr=3e-3, num_threads=1)
    res = pretrain(cut, spec=spec, model_config=CFG, config=cfg)
    losses = [h["loss"] for h in res.history]
    assert len(losses) == 6 and np.isfinite(losses).all()
    assert np.mean(losses[-2:]) < losses[0]  # it learned something
    torch.manual_seed(cfg.seed)  # the head is the one the net was built with
    ref = LineCNN(CFG)
    for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
        assert torch.equal(res.model.state_dict()[k], ref.state_dict()[k])
    changed = [
        k for k, v in trunk_state(res.model).items() if not torch.equal(v, ref.state_dict()[k])
    ]
    assert any(k.startswith("trunk.") for k in changed)
    assert any(k.startswith("spec_trunk.") for k in changed)  # the 1D trunk is pretrained too


def test_contrastive_views_differ_but_keep_shape_and_the_loss_ranks_twins():
    g = torch.Generator().manual_seed(0)
    x, s = torch.randn(8, 5, 9, 100), torch.randn(8, 2, 200)
    x1, s1 = contrastive_view(x, s, PretrainConfig(), g)
    assert x1.shape == x.shape and s1.shape == s.shape and not torch.equal(x1, x)
    z = torch.randn(16, 8)
    assert nt_xent(z, z, 0.2) < nt_xent(z, torch.randn(16, 8), 0.2)  # twins agree: lower


def test_unknown_approach_and_missing_spec_are_clear_errors(arrays):
    cut, spec, _, _ = arrays
    with pytest.raises(ValueError, match="approach"):
        pretrain(cut, spec=spec, model_config=CFG, config=PretrainConfig(approach="byol"))
    with pytest.raises(ValueError, match="spec"):
        pretrain(cut, model_config=CFG, config=PretrainConfig(epochs=1))


def test_saved_encoder_loads_and_fine_tuning_starts_from_its_trunks(arrays, tmp_path, monkeypatch):
    cut, spec, y, sn = arrays
    res = pretrain(
        cut,
        spec=spec,
        model_config=CFG,
        config=PretrainConfig(epochs=2, batch_size=32, num_threads=1, seed=4),
    )
    card = build_pretrain_card(res, data_hash="abc", data_source="test")
    write_model_dir(tmp_path / "enc", res.model, card)
    enc = load_checkpoint(tmp_path / "enc")
    for k, v in res.model.state_dict().items():
        assert torch.equal(enc.state_dict()[k], v)
    card = read_card(tmp_path / "enc")
    for k in (
        "kind",
        "approach",
        "n_candidates",
        "epochs",
        "loss_curve",
        "seed",
        "data_hash",
        "data_source",
        "pretrain_config",
        "model_config",
        "weights_sha256",
        "code_version",
    ):
        assert k in card, k
    assert card["kind"] == "pretrained-encoder" and card["n_candidates"] == len(cut)
    assert card["epochs"] == 2 and len(card["loss_curve"]) == 2 and card["seed"] == 4

    seen = {}
    real_adamw = torch.optim.AdamW

    def spy(params, **kw):  # the weights the optimiser gets: before the first step
        params = list(params)
        seen["p"] = [p.detach().clone() for p in params]
        return real_adamw(params, **kw)

    monkeypatch.setattr(training.torch.optim, "AdamW", spy)
    init = with_fresh_head(enc, seed=7)
    train(
        cut,
        y,
        sn,
        spec=spec,
        model_config=CFG,
        init=init,
        config=TrainConfig(epochs=1, min_epoch_samples=32, num_threads=1),
    )
    names = [n for n, _ in init.named_parameters()]
    start = dict(zip(names, seen["p"], strict=True))
    fresh = dict(LineCNN(CFG).named_parameters())
    for n, p in enc.named_parameters():
        if n.startswith(("trunk.", "spec_trunk.")):
            assert torch.equal(start[n], p.detach()), n
            assert not torch.equal(start[n], fresh[n].detach())  # not a fresh net's
    # the head was re-drawn from the seed, not the encoder's
    assert not torch.equal(start["fc1.weight"], enc.fc1.weight.detach())


def test_cli_pretrains_and_fine_tunes_from_the_encoder(tmp_path, capsys):
    data = write_survey(tmp_path / "s.fits", make_survey(200, seed=1))
    enc = tmp_path / "enc"
    rc = main(
        [
            "pretrain",
            "--data",
            str(data),
            "--out",
            str(enc),
            "--epochs",
            "2",
            "--width",
            "4",
            "--threads",
            "1",
            "--approach",
            "masked",
            "--batch-size",
            "64",
        ]
    )
    assert rc == 0
    card = read_card(enc)
    assert card["approach"] == "masked" and card["n_candidates"] == 200
    assert card["data_source"] == f"file {data}" and len(card["data_hash"]) == 64
    out = tmp_path / "model"
    rc = _train(data, out, 4, "--init", str(enc))
    assert rc == 0
    model_card = json.loads((out / "model_card.json").read_text())
    assert model_card["init"]["kind"] == "pretrained-encoder"
    assert model_card["init"]["weights_sha256"] == card["weights_sha256"]
    # an encoder of another width is refused with a clear error, not a traceback
    rc = _train(data, tmp_path / "m2", 6, "--init", str(enc))
    assert rc == 2 and "architecture" in capsys.readouterr().err
    rc = main(
        ["--data", str(data), "--out", str(tmp_path / "m3"), "--epochs", "1", "--width", "4",
         "--init", str(tmp_path / "no-such-encoder")]
    )  # fmt: skip
    assert rc == 2 and "not a model directory" in capsys.readouterr().err


def _train(data, out, width: int, *extra: str) -> int:
    """``python -m mlcore.train`` for one quick epoch on one thread."""
    args = ["--data", str(data), "--out", str(out), "--epochs", "1", "--width", str(width)]
    return main([*args, "--threads", "1", *extra])


def test_cli_pretrains_on_a_simulation(tmp_path):
    rc = main(
        [
            "pretrain",
            "--simulate",
            "64",
            "--out",
            str(tmp_path / "e"),
            "--epochs",
            "1",
            "--width",
            "4",
            "--threads",
            "1",
            "--no-spec1d",
            "--batch-size",
            "32",
        ]
    )
    assert rc == 0
    card = read_card(tmp_path / "e")
    assert (
        card["data_source"].startswith("simulate_survey(64")
        and card["model_config"]["spec_len"] == 0
    )


def test_pretraining_imports_no_django():
    code = (
        "import sys, mlcore.cnn.pretrain, mlcore.train; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'labelapp', 'celery')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
