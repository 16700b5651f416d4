import logging

import numpy as np
import pytest
import torch

from mlcore.cnn.evaluation import balanced_accuracy, fit_calibration
from mlcore.cnn.model import CNNConfig, EnsembleCNN, LineCNN, count_parameters
from mlcore.cnn.toy import toy_candidates
from mlcore.cnn.training import (
    TrainConfig,
    normalise_rows,
    predict_logits,
    should_stop,
    train,
)
from tests.factories_cnn import TINY, fast_config


@pytest.fixture(scope="module")
def toy():
    torch.set_num_threads(1)
    return toy_candidates(900, seed=0), toy_candidates(400, seed=1)


def test_training_beats_chance_clearly_in_seconds(toy):
    tr, te = toy
    res = train(
        tr["cutouts"], tr["real"], tr["sn"], model_config=TINY, config=fast_config(epochs=4)
    )
    logits = predict_logits(res.model, normalise_rows(te["cutouts"], np.arange(400)))
    assert balanced_accuracy(te["real"], logits >= 0) > 0.8
    assert res.train_time_s < 30
    assert 0 <= res.best_epoch < 4 and len(res.history) == 4


def test_same_seed_same_weights_on_cpu(toy):
    tr, _ = toy
    x, y, sn = tr["cutouts"][:400], tr["real"][:400], tr["sn"][:400]
    a = train(x, y, sn, model_config=TINY, config=fast_config(epochs=1))
    b = train(x, y, sn, model_config=TINY, config=fast_config(epochs=1))
    c = train(x, y, sn, model_config=TINY, config=fast_config(epochs=1, seed=1))
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    assert not torch.equal(a.model.fc2.weight, c.model.fc2.weight)
    assert np.array_equal(a.val_idx, b.val_idx)


def test_soft_volunteer_targets_and_confidence_weights_train(toy):
    tr, _ = toy
    soft = np.where(tr["real"], 0.85, 0.1).astype(np.float32)
    conf = np.linspace(0.2, 1.0, len(soft)).astype(np.float32)
    res = train(
        tr["cutouts"], soft, tr["sn"], weights=conf, model_config=TINY, config=fast_config()
    )
    assert np.isfinite(res.history[-1]["val_loss"])
    assert res.history[-1]["val_bacc_high"] > 0.7


def test_confidence_weights_change_what_is_learned(toy):
    tr, _ = toy
    x, y, sn = tr["cutouts"][:400], tr["real"][:400], tr["sn"][:400]
    w = np.ones(400, np.float32)
    w[:200] = 0.0  # half of the labels carry no weight
    a = train(x, y, sn, model_config=TINY, config=fast_config(epochs=1))
    b = train(x, y, sn, weights=w, model_config=TINY, config=fast_config(epochs=1))
    assert not torch.equal(a.model.fc2.weight, b.model.fc2.weight)


def test_temperature_is_fitted_on_validation_and_stored_in_the_model(toy):
    tr, _ = toy
    res = train(tr["cutouts"], tr["real"], tr["sn"], model_config=TINY, config=fast_config())
    assert res.temperature != 1.0
    assert float(res.model.temperature) == pytest.approx(res.temperature)
    # fitted together with the per-regime prior shift on the validation labels
    y_va, sn_va = tr["real"][res.val_idx], tr["sn"][res.val_idx]
    t, shift = fit_calibration(res.val_logits, y_va, sn_va)
    assert res.temperature == pytest.approx(t) and res.prior_shift == pytest.approx(shift)
    assert res.model.prior_shift.tolist() == pytest.approx(list(shift))
    assert len(res.val_logits) == len(res.val_idx)
    assert len(np.intersect1d(res.train_idx, res.val_idx)) == 0


def test_explicit_split_never_reads_other_rows(toy):
    tr, _ = toy
    x = tr["cutouts"].copy()
    x[800:] = np.nan  # a held-out block that must not leak into training
    res = train(
        x,
        tr["real"],
        tr["sn"],
        train_idx=np.arange(600),
        val_idx=np.arange(600, 800),
        model_config=TINY,
        config=fast_config(epochs=1),
    )
    assert res.train_idx.max() < 600 and res.val_idx.max() < 800


def test_unlabelled_rows_are_left_out_and_zero_weights_do_not_give_nan(toy):
    tr, _ = toy
    t = tr["real"].astype(np.float32)
    t[::3] = np.nan  # unlabelled
    w = np.zeros(len(t), np.float32)  # no confidence at all: loss must stay finite
    res = train(
        tr["cutouts"], t, tr["sn"], weights=w, model_config=TINY, config=fast_config(epochs=1)
    )
    used = np.concatenate([res.train_idx, res.val_idx])
    assert not np.isin(np.arange(0, len(t), 3), used).any()
    assert np.isfinite(res.history[0]["train_loss"])
    with pytest.raises(ValueError, match="finite"):
        train(
            tr["cutouts"],
            t,
            tr["sn"],
            train_idx=np.arange(300),
            val_idx=np.arange(300, 400),
            model_config=TINY,
            config=fast_config(epochs=1),
        )


def test_keep_last_holds_the_end_of_the_schedule(toy):
    tr, _ = toy
    x, y, sn = tr["cutouts"][:400], tr["real"][:400], tr["sn"][:400]
    best = train(x, y, sn, model_config=TINY, config=fast_config(epochs=3, patience=9))
    last = train(x, y, sn, model_config=TINY, config=fast_config(epochs=3, patience=9, keep="last"))
    assert best.kept_epoch == best.best_epoch and last.kept_epoch == 2
    assert last.best_epoch == best.best_epoch  # the same trajectory, another pick from it
    same = torch.equal(best.model.fc2.weight, last.model.fc2.weight)
    assert same == (best.best_epoch == 2)
    with pytest.raises(ValueError, match="keep must be 'best' or 'last'"):
        train(x, y, sn, model_config=TINY, config=fast_config(keep="final"))


def test_ensemble_members_share_one_split_and_average_their_logits(toy):
    tr, te = toy
    x, y, sn = tr["cutouts"][:400], tr["real"][:400], tr["sn"][:400]
    epochs_seen = []
    res = train(
        x, y, sn, model_config=TINY, config=fast_config(members=3, member_tolerance=1.0),
        on_epoch=lambda rec, total: epochs_seen.append((rec["epoch"], total)),
    )  # fmt: skip
    ens = res.model
    assert isinstance(ens, EnsembleCNN) and len(ens.members) == 3
    # each member is the single model of its seed on the first member's split
    solo = train(x, y, sn, model_config=TINY, config=fast_config(seed=1), train_idx=res.train_idx,
                 val_idx=res.val_idx)  # fmt: skip
    assert torch.equal(ens.members[1].fc2.weight, solo.model.fc2.weight)
    assert [m["seed"] for m in res.members] == [0, 1, 2] and all(m["kept"] for m in res.members)
    # progress runs over the whole ensemble, 3 members x 2 epochs
    assert epochs_seen == [(k, 6) for k in range(6)]
    assert [h["member"] for h in res.history] == [0, 0, 1, 1, 2, 2]
    xn = normalise_rows(te["cutouts"], np.arange(50))
    member_logits = np.stack([predict_logits(m, xn) for m in ens.members])
    np.testing.assert_allclose(predict_logits(ens, xn), member_logits.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res.val_logits, np.mean(
        [predict_logits(m, normalise_rows(x, res.val_idx)) for m in ens.members], 0
    ), rtol=1e-5, atol=1e-5)  # fmt: skip
    assert float(ens.temperature) == pytest.approx(res.temperature)
    t, shift = fit_calibration(res.val_logits, y[res.val_idx], sn[res.val_idx])
    assert res.temperature == pytest.approx(t) and ens.prior_shift.tolist() == pytest.approx(
        list(shift)
    )
    assert res.n_parameters == 3 * count_parameters(ens.members[0])


def test_ensemble_drops_a_member_that_failed_to_train(toy, monkeypatch, caplog):
    from mlcore.cnn import training

    tr, _ = toy
    x, y, sn = tr["cutouts"][:400], tr["real"][:400], tr["sn"][:400]
    real_one = training.train_one

    def one(*a, config, **kw):
        res = real_one(*a, config=config, **kw)
        right = np.where(y[res.val_idx], 3.0, -3.0).astype(np.float32)
        # seeds 0 and 2 call validation right; seed 1 "failed" and gets it all wrong
        res.val_logits = -right if config.seed == 1 else right
        return res

    monkeypatch.setattr(training, "train_one", one)
    cfg = fast_config(members=3, member_tolerance=0.2)
    with caplog.at_level(logging.INFO, logger="mlcore.cnn.training"):
        res = training.train(x, y, sn, model_config=TINY, config=cfg)
    assert [m["kept"] for m in res.members] == [True, False, True]
    assert len(res.model.members) == 2
    assert any("member seed 1 dropped" in r.getMessage() for r in caplog.records)
    # a lone survivor is returned as the plain LineCNN it is (it saves as one, too)
    two = fast_config(members=2, member_tolerance=0.2)
    res = training.train(x, y, sn, model_config=TINY, config=two)
    assert type(res.model) is LineCNN and [m["kept"] for m in res.members] == [True, False]
    with pytest.raises(ValueError, match="members must be at least 1"):
        training.train(x, y, sn, model_config=TINY, config=fast_config(members=0))


def test_member_drop_rule_allows_for_a_small_validation_set(toy, monkeypatch):
    from mlcore.cnn import training

    assert training._bacc_standard_error(0.8, np.array([True] * 20 + [False] * 20)) == (
        pytest.approx(0.5 * np.sqrt(0.16 / 20 + 0.16 / 20))
    )
    assert training._bacc_standard_error(0.8, np.ones(5, bool)) == 0.5
    tr, _ = toy
    x, y, sn = tr["cutouts"][:400], tr["real"][:400], tr["sn"][:400]
    right_share = {0: 0.8, 1: 0.67, 2: 0.5}  # per class, on the validation rows
    real_one = training.train_one

    def one(*a, config, **kw):
        res = real_one(*a, config=config, **kw)
        yv = y[res.val_idx]
        logits = np.where(yv, 3.0, -3.0).astype(np.float32)
        for cls in (True, False):
            rows = np.flatnonzero(yv == cls)
            wrong = rows[: round(len(rows) * (1 - right_share[config.seed]))]
            logits[wrong] *= -1
        res.val_logits = logits
        return res

    monkeypatch.setattr(training, "train_one", one)
    res = training.train(x, y, sn, model_config=TINY, config=fast_config(members=3))
    best, b1, b2 = (m["val_bacc"] for m in res.members)
    allowed = 3 * training._bacc_standard_error(best, y[res.val_idx])
    # ~60 validation rows: member 1 is further below the best than the 0.10 tolerance but
    # within 3 standard errors, so only the standard-error term keeps it
    assert 0.10 < best - b1 < allowed < best - b2
    assert [m["kept"] for m in res.members] == [True, True, False]


def test_members_are_all_kept_when_validation_cannot_judge_them(toy):
    tr, _ = toy
    x, sn = tr["cutouts"][:300], tr["sn"][:300]
    y = np.zeros(300, np.float32)
    y[:30] = 1.0  # validation rows below: all of one class
    val = np.arange(100, 150)
    res = train(x, y, sn, model_config=TINY, config=fast_config(epochs=1, members=2),
                train_idx=np.arange(100), val_idx=val)  # fmt: skip
    assert [m["kept"] for m in res.members] == [True, True]
    assert isinstance(res.model, EnsembleCNN) and len(res.model.members) == 2


def test_early_stopping_waits_for_the_second_half_of_the_schedule():
    cfg = TrainConfig(epochs=30, patience=5)
    # best at epoch 6, still in the high-learning-rate half: no stop before epoch 15 + 5
    assert not any(should_stop(e, 6, cfg) for e in range(7, 20))
    assert should_stop(20, 6, cfg)
    # best late in the schedule: patience counts from it
    assert not should_stop(25, 21, cfg) and should_stop(26, 21, cfg)
    # an early best epoch: the midpoint (5 of 10) is where patience starts
    assert not should_stop(6, 0, TrainConfig(epochs=10, patience=2))
    assert should_stop(7, 0, TrainConfig(epochs=10, patience=2))


# --- fine-tuning from a model (issue #25: recover with few labels) ----------------------------


def test_fine_tuning_starts_from_the_given_weights(toy):
    tr, te = toy
    x, y, sn = tr["cutouts"][:400], tr["real"][:400], tr["sn"][:400]
    base = train(x, y, sn, model_config=TINY, config=fast_config(epochs=3)).model
    # a learning rate too small to move anything: what comes out is where it started
    still = train(x, y, sn, model_config=TINY, config=fast_config(epochs=1, lr=1e-12), init=base)
    fresh = train(x, y, sn, model_config=TINY, config=fast_config(epochs=1, lr=1e-12))
    for name in ("trunk.0.0.weight", "fc1.weight", "fc2.weight"):
        got = still.model.state_dict()[name]
        torch.testing.assert_close(got, base.state_dict()[name], rtol=0, atol=1e-6)
        assert (got - fresh.model.state_dict()[name]).abs().max() > 1e-3, name
    # so it predicts like its start, where a fresh start at that rate is still at chance
    xt = normalise_rows(te["cutouts"], np.arange(400))
    assert balanced_accuracy(te["real"], predict_logits(still.model, xt) >= 0) > 0.75
    assert balanced_accuracy(te["real"], predict_logits(fresh.model, xt) >= 0) < 0.7
    assert still.model is not base  # a copy: the live model is never trained in place


def test_fine_tuning_refuses_another_architecture_and_too_few_members(toy):
    tr, _ = toy
    x, y, sn = tr["cutouts"][:200], tr["real"][:200], tr["sn"][:200]
    other = LineCNN(CNNConfig(width=8, hidden=16))
    with pytest.raises(ValueError, match="architecture"):
        train(x, y, sn, model_config=TINY, config=fast_config(epochs=1), init=other)
    pair = EnsembleCNN([LineCNN(TINY), LineCNN(TINY)])
    with pytest.raises(ValueError, match="ensemble of 2"):
        train(x, y, sn, model_config=TINY, config=fast_config(epochs=1, members=3), init=pair)
