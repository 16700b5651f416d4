import math

import numpy as np
import pytest

from mlcore.cnn.evaluation import (
    apply_prior_shift,
    binary_metrics,
    crossmatch_external,
    evaluate,
    expected_calibration_error,
    fit_calibration,
    fit_prior_shift,
    fit_temperature,
    metrics_by_regime,
    reliability_curve,
    roc_auc,
    sigmoid,
    type_report,
)

# Tiny fixture, worked by hand:
#   y    1    1    1    1    0    0    0    0    0    0
#   p  .9   .8   .4   .7   .6   .2   .1   .3   .05  .5
# threshold .5 -> pred 1 1 0 1 1 0 0 0 0 1 : TP=3 FN=1 FP=2 TN=4
Y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], bool)
P = np.array([0.9, 0.8, 0.4, 0.7, 0.6, 0.2, 0.1, 0.3, 0.05, 0.5])


def test_binary_metrics_match_hand_computed_values():
    m = binary_metrics(Y, P)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (3, 1, 2, 4)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["specificity"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    # AUC: pairs (pos > neg): .9,.8,.7 beat all 6 negatives (18); .4 beats .2,.1,.3,.05 (4)
    assert m["roc_auc"] == pytest.approx(22 / 24)


def test_roc_auc_counts_ties_as_half():
    assert roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([1, 1, 0], [0.7, 0.5, 0.5]) == pytest.approx((1 + 0.5) / 2)
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_one_class_subsets_give_none_not_errors():
    m = binary_metrics(np.ones(3, bool), np.array([0.9, 0.2, 0.6]))
    assert m["balanced_accuracy"] is None and m["roc_auc"] is None
    assert m["recall"] == pytest.approx(2 / 3) and m["specificity"] is None


def test_regimes_use_the_paper_boundaries():
    sn = np.array([4.8, 5.5, 5.5001, 9.0])
    r = metrics_by_regime(np.array([1, 0, 1, 0], bool), np.array([0.9, 0.1, 0.9, 0.9]), sn)
    assert r["low"]["n"] == 2 and r["high"]["n"] == 2 and r["overall"]["n"] == 4
    assert r["low"]["balanced_accuracy"] == 1.0 and r["high"]["balanced_accuracy"] == 0.5


def test_ece_and_reliability_by_hand():
    y = np.array([1, 0, 1, 1], float)
    p = np.array([0.1, 0.1, 0.9, 0.7])
    # bins of width .5: [.1,.1] -> mean .1, frac .5 ; [.9,.7] -> mean .8, frac 1
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.5 * 0.4 + 0.5 * 0.2)
    rc = reliability_curve(y, p, n_bins=2)
    assert rc["count"] == [2, 2] and rc["frac_real"] == [0.5, 1.0]


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0, 3, 20000)
    y = rng.random(20000) < sigmoid(true_logit)
    t = fit_temperature(true_logit * 2.5, y)  # an overconfident model: logits x 2.5
    assert t == pytest.approx(2.5, rel=0.05)
    rep = evaluate(y, true_logit * 2.5, np.full(20000, 6.0), temperature=t)
    cal = rep["calibration"]
    assert cal["ece_calibrated"] < cal["ece_uncalibrated"] / 3


def test_prior_shift_recovers_the_class_mix_a_balanced_loss_hid():
    # A class-balanced model outputs logit = true logit - log prior odds of its regime:
    # here 0.3 at low S/N and 2.0 at high S/N (real lines the majority, as in the survey).
    rng = np.random.default_rng(1)
    n = 40000
    sn = np.where(rng.random(n) < 0.5, 5.0, 6.5)
    offset = np.where(sn > 5.5, 2.0, 0.3)
    true_logit = rng.normal(0, 2.5, n) + offset
    y = rng.random(n) < sigmoid(true_logit)
    balanced = (true_logit - offset) * 1.5  # and overconfident
    t_alone = fit_temperature(balanced, y)
    assert t_alone > 1.8  # a temperature alone stretches to absorb the missing offset
    t, shift = fit_calibration(balanced, y, sn)
    assert t == pytest.approx(1.5, rel=0.04)
    assert shift == pytest.approx([0.3, 2.0], abs=0.08)
    cal = evaluate(y, balanced, sn, temperature=t, prior_shift=shift)["calibration"]
    assert cal["prior_shift"] == {"low": shift[0], "high": shift[1]}
    assert cal["ece_prior_corrected"] < 0.015 < 0.05 < cal["ece_calibrated"]
    # the shifted probability is the balanced one moved by the regime's offset
    assert cal["ece_prior_corrected"] < expected_calibration_error(
        y, sigmoid(balanced / t_alone), 15
    )
    assert cal["p_real_decision_threshold"]["high"] == pytest.approx(sigmoid(shift[1]))
    assert "ece_prior_corrected" not in evaluate(y, balanced, sn, temperature=t)["calibration"]


def test_prior_shift_by_hand_and_edge_cases():
    # sn <= 5.5 is low (shift 0), above is high (shift log 3): 0.5 -> 0.75, 0.25 -> 0.5
    p = apply_prior_shift([0.5, 0.5, 0.25, np.nan, 0.0], [5.5, 5.51, 6.0, 6.0, 6.0], [0, np.log(3)])
    assert p[:3] == pytest.approx([0.5, 0.75, 0.5])
    assert np.isnan(p[3]) and 0 <= p[4] < 1e-9  # NaN stays NaN; 0 does not become NaN
    # a regime with no validation rows keeps shift 0
    shift = fit_prior_shift(np.array([1.0, -1.0, 2.0]), np.array([1, 0, 1]), np.full(3, 5.0), 1.0)
    assert shift[1] == 0.0 and np.isfinite(shift[0])
    # a regime whose labels are all one class gets a finite shift, not the bound
    z = np.array([-1.0, -0.5, 0.2, -2.0, 0.1, -0.3])
    shift = fit_prior_shift(z, np.zeros(6), np.full(6, 6.0), 1.0)
    assert -5 < shift[1] < -0.5 and shift[0] == 0.0
    t_, s_ = fit_calibration(z, np.zeros(6), np.full(6, 6.0))
    assert np.isfinite(t_) and -8 < s_[1] < 0


def test_type_report_shows_which_contaminants_fool_the_model():
    tt = np.array(["lae", "lae", "sky", "sky", "noise"])
    p = np.array([0.9, 0.2, 0.8, 0.7, 0.1])
    rep = type_report(tt, p, np.full(5, 5.0))
    assert rep["lae"]["kind"] == "real" and rep["lae"]["low"]["frac_called_real"] == 0.5
    assert rep["sky"]["low"]["frac_called_real"] == 1.0
    assert rep["noise"]["overall"]["frac_called_real"] == 0.0
    assert rep["sky"]["high"]["n"] == 0


def test_crossmatch_needs_position_and_wavelength_and_reports_per_regime():
    ra0, dec0 = 150.0, 2.0
    arc = 1 / 3600
    # candidates: 0 low-sn recovered, 1 high-sn missed, 2 at same spot as ext 2 but wrong line
    cand_ra = np.array([ra0, ra0 + 0.1, ra0 + 0.2])
    cand_dec = np.array([dec0, dec0, dec0])
    z = np.array([2.0, 2.5, 3.0])
    lya = 1215.67 * (1 + z)
    cand_wave = np.array([lya[0] + 2, lya[1], lya[2] - 50])
    res = crossmatch_external(
        cand_ra, cand_dec, cand_wave, np.array([5.0, 7.0, 6.0]), np.array([0.9, 0.3, 0.9]),
        cand_ra + 0.5 * arc, cand_dec + 0.3 * arc, z,
    )  # fmt: skip
    assert res["n_external"] == 3 and res["n_unmatched"] == 1
    assert res["low"] == {"n_matched": 1, "n_recovered": 1, "recovery": 1.0}
    assert res["high"] == {"n_matched": 1, "n_recovered": 0, "recovery": 0.0}
    far = crossmatch_external(
        cand_ra, cand_dec, cand_wave, np.full(3, 6.0), np.ones(3), cand_ra + 3 * arc, cand_dec, z
    )
    assert far["n_unmatched"] == 3


def test_evaluate_reports_fields_and_types():
    sn = np.array([5.0, 6.0, 5.2, 7.0])
    rep = evaluate(
        np.array([1, 0, 0, 1]),
        np.array([2.0, -1.0, 0.5, 3.0]),
        sn,
        field=np.array(["cosmos", "cosmos", "goods-n", "goods-n"]),
        truth_type=np.array(["lae", "sky", "noise", "oii"]),
    )
    assert set(rep["fields"]) == {"cosmos", "goods-n"}
    assert rep["types"]["noise"]["low"]["frac_called_real"] == 1.0
    assert rep["regimes"]["overall"]["tp"] == 2
