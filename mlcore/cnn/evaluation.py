"""Held-out evaluation: metrics per S/N regime, field and contaminant type; calibration
(temperature scaling and the per-regime prior shift); recovery of externally confirmed
(DESI-like) LAEs.

Pure numpy (+ astropy for the sky cross-match). Labels ``y`` are booleans (soft targets are
thresholded at 0.5); ``p`` are probabilities of "real line". Empty or one-class subsets
give NaN for the metrics that need both classes, never an exception.
"""

from __future__ import annotations

import math

import numpy as np

from mlcore.survey import (
    CONTAMINANT_TYPES,
    LYA_REST,
    REAL_TYPES,
    SN_THRESHOLD,
    regime_index,
)

NAN = float("nan")


def _f(x: float) -> float | None:
    """JSON-friendly float: NaN -> None."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    y, pred = np.asarray(y, bool), np.asarray(pred, bool)
    if y.all() or (~y).all():
        return NAN
    return 0.5 * (pred[y].mean() + (~pred[~y]).mean())


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count one half)."""
    y, score = np.asarray(y, bool), np.asarray(score, np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return NAN
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(len(s), np.float64)
    # average ranks over ties
    _, first, counts = np.unique(s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0  # 1-based mean rank of each tie group
    ranks[order] = np.repeat(avg, counts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict:
    """n, counts, balanced accuracy, precision, recall, specificity, accuracy, ROC-AUC."""
    y = np.asarray(y, bool)
    p = np.asarray(p, np.float64)
    pred = p >= threshold
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    fn, tn = int((~pred & y).sum()), int((~pred & ~y).sum())
    return {
        "n": len(y),
        "n_real": int(y.sum()),
        "n_false": int((~y).sum()),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "balanced_accuracy": _f(balanced_accuracy(y, pred)) if len(y) else None,
        "precision": _f(tp / (tp + fp)) if tp + fp else None,
        "recall": _f(tp / (tp + fn)) if tp + fn else None,
        "specificity": _f(tn / (tn + fp)) if tn + fp else None,
        "accuracy": _f((tp + tn) / len(y)) if len(y) else None,
        "roc_auc": _f(roc_auc(y, p)),
    }


def regime_masks(sn: np.ndarray) -> dict[str, np.ndarray]:
    sn = np.asarray(sn)
    return {
        "overall": np.ones(len(sn), bool),
        "high": regime_index(sn) == 1,
        "low": (sn >= SN_THRESHOLD) & (regime_index(sn) == 0),
    }


def metrics_by_regime(y, p, sn, threshold: float = 0.5) -> dict[str, dict]:
    """{'overall', 'high' (sn > 5.5), 'low' (4.8 <= sn <= 5.5)} -> binary_metrics."""
    y, p = np.asarray(y, bool), np.asarray(p)
    return {k: binary_metrics(y[m], p[m], threshold) for k, m in regime_masks(sn).items()}


def metrics_by_group(y, p, sn, groups, threshold: float = 0.5) -> dict[str, dict]:
    """Per value of ``groups`` (e.g. field): metrics per regime."""
    y, p, sn, groups = np.asarray(y, bool), np.asarray(p), np.asarray(sn), np.asarray(groups)
    return {
        str(g): metrics_by_regime(y[groups == g], p[groups == g], sn[groups == g], threshold)
        for g in np.unique(groups)
    }


def type_report(truth_type, p, sn, threshold: float = 0.5) -> dict[str, dict]:
    """Per truth type: how often it is called real, per regime.

    For contaminants ``frac_called_real`` is the false-positive rate (which artefacts fool
    the model); for real types (lae, oii) it is the recall.
    """
    truth_type, p, sn = np.asarray(truth_type), np.asarray(p), np.asarray(sn)
    out = {}
    for t in [*REAL_TYPES, *CONTAMINANT_TYPES]:
        sel = truth_type == t
        if not sel.any():
            continue
        rec = {"kind": "real" if t in REAL_TYPES else "contaminant"}
        for reg, m in regime_masks(sn).items():
            mm = sel & m
            rec[reg] = {
                "n": int(mm.sum()),
                "frac_called_real": _f(float((p[mm] >= threshold).mean())) if mm.any() else None,
                "mean_prob": _f(float(p[mm].mean())) if mm.any() else None,
            }
        out[t] = rec
    return out


# --- calibration ---------------------------------------------------------------------------


def reliability_curve(y, p, n_bins: int = 15) -> dict[str, list]:
    """Equal-width bins of predicted probability: mean prediction, observed fraction real."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.digitize(p, edges[1:-1], right=False), 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    sum_p = np.bincount(b, weights=p, minlength=n_bins)
    sum_y = np.bincount(b, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p, frac = sum_p / count, sum_y / count
    return {
        "bin_lo": edges[:-1].tolist(),
        "bin_hi": edges[1:].tolist(),
        "count": count.astype(int).tolist(),
        "mean_pred": [_f(v) for v in mean_p],
        "frac_real": [_f(v) for v in frac],
    }


def expected_calibration_error(y, p, n_bins: int = 15) -> float:
    """ECE: count-weighted mean |observed fraction - mean prediction| over equal-width bins."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    if len(y) == 0:
        return NAN
    rc = reliability_curve(y, p, n_bins)
    tot = 0.0
    for c, mp, fr in zip(rc["count"], rc["mean_pred"], rc["frac_real"], strict=True):
        if c:
            tot += c * abs(fr - mp)
    return tot / len(y)


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def _nll(logits: np.ndarray, t: np.ndarray, temperature: float, shift=0.0) -> float:
    z = logits / temperature + shift
    # BCE with logits, stable: max(z,0) - z t + log(1 + exp(-|z|))
    return float(np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))))


def _golden_min(f, lo: float, hi: float, iters: int = 60) -> float:
    """Minimiser of a unimodal f on [lo, hi] by golden-section search."""
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(iters):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(b)
    return 0.5 * (lo + hi)


def fit_temperature(logits: np.ndarray, targets: np.ndarray, offset=0.0) -> float:
    """Temperature T minimising the NLL of sigmoid(logits / T + offset) on a validation set.

    Golden-section search on log T in [-3, 3] (T from 0.05 to 20); the NLL is convex in 1/T
    so the search finds the optimum. Soft targets are fine. ``offset``: a scalar or one per
    row (the prior shift). Empty input -> 1.
    """
    logits = np.asarray(logits, np.float64)
    t = np.asarray(targets, np.float64)
    if len(logits) == 0:
        return 1.0
    u = _golden_min(lambda u: _nll(logits, t, math.exp(u), offset), -3.0, 3.0)
    return float(math.exp(u))


def fit_prior_shift(
    logits: np.ndarray, targets: np.ndarray, sn: np.ndarray, temperature: float
) -> np.ndarray:
    """Per-regime logit offsets (low, high) minimising the NLL of sigmoid(logits / T + shift)
    for a given temperature (1D convex fits, golden section on [-8, 8]). A regime without
    rows gets 0. :func:`fit_calibration` fits both together.

    Each regime's fit also sees one real and one artefact pseudo-row at logit 0 (add-one
    smoothing): a regime whose few validation labels are all one class (early rounds) would
    otherwise push its shift to the bound and make every P(real) there 0 or 1. With
    hundreds of rows the pseudo-rows do not matter.
    """
    z = np.asarray(logits, np.float64)
    t = np.asarray(targets, np.float64)
    reg = regime_index(sn)
    shift = np.zeros(2)
    for r in (0, 1):
        m = reg == r
        if m.any():
            zr = np.concatenate([z[m] / temperature, [0.0, 0.0]])
            tr = np.concatenate([t[m], [1.0, 0.0]])
            shift[r] = _golden_min(lambda b, zr=zr, tr=tr: _nll(zr, tr, 1.0, b), -8.0, 8.0)
    return shift


def fit_calibration(
    logits: np.ndarray, targets: np.ndarray, sn: np.ndarray, max_iter: int = 50
) -> tuple[float, np.ndarray]:
    """Temperature and per-regime prior shift, fitted together on validation -> (T, shift).

    The class-balanced loss trains each S/N regime as if real lines and artefacts were
    equally common, so the model's logit is about the true one minus that regime's log
    prior odds: sigmoid(logit / T) answers "real or not, at even odds" (what the
    balanced-accuracy decision at 0.5 needs) and runs low wherever real lines are the
    majority. sigmoid(logit / T + shift[regime]) restores the labels' class mix. A
    temperature fitted alone would stretch to absorb part of the missing offset, so the
    two are fitted by coordinate descent on the NLL, which is jointly convex in
    (1/T, shift); it stops when neither moves by 1e-5.
    """
    z = np.asarray(logits, np.float64)
    t = np.asarray(targets, np.float64)
    reg = regime_index(sn)
    temperature, shift = fit_temperature(z, t), np.zeros(2)
    for _ in range(max_iter):
        new_shift = fit_prior_shift(z, t, sn, temperature)
        new_t = fit_temperature(z, t, new_shift[reg])
        done = abs(new_t - temperature) < 1e-5 and np.abs(new_shift - shift).max() < 1e-5
        temperature, shift = new_t, new_shift
        if done:
            break
    return temperature, shift


def apply_prior_shift(prob: np.ndarray, sn: np.ndarray, shift) -> np.ndarray:
    """Balanced-odds probabilities -> probabilities at the labels' class mix, per regime.

    sigmoid(logit(prob) + shift[regime]); NaN stays NaN. Exact for a deterministic pass; for
    an MC-dropout mean (the stored ``prob``) it shifts the mean rather than averaging
    shifted samples, an approximation.
    """
    p = np.clip(np.asarray(prob, np.float64), 1e-12, 1 - 1e-12)
    b = np.asarray(shift, np.float64)[regime_index(sn)]
    return sigmoid(np.log(p) - np.log1p(-p) + b)


def calibration_report(
    y, logits, temperature: float, n_bins: int = 15, sn=None, prior_shift=None
) -> dict:
    """ECE and reliability curve before and after temperature scaling, and (given ``sn``
    and ``prior_shift``) after the per-regime prior shift as well."""
    p_raw, p_cal = sigmoid(logits), sigmoid(np.asarray(logits) / temperature)
    rep = {
        "temperature": float(temperature),
        "n_bins": n_bins,
        "ece_uncalibrated": _f(expected_calibration_error(y, p_raw, n_bins)),
        "ece_calibrated": _f(expected_calibration_error(y, p_cal, n_bins)),
        "reliability_uncalibrated": reliability_curve(y, p_raw, n_bins),
        "reliability_calibrated": reliability_curve(y, p_cal, n_bins),
    }
    if sn is not None and prior_shift is not None:
        b = np.asarray(prior_shift, np.float64)
        p_pr = sigmoid(np.asarray(logits) / temperature + b[regime_index(sn)])
        rep |= {
            "prior_shift": {"low": float(b[0]), "high": float(b[1])},
            # where P(real) at the class mix crosses the balanced (sigmoid = 0.5) decision
            "p_real_decision_threshold": {
                "low": float(sigmoid(b[0])),
                "high": float(sigmoid(b[1])),
            },
            "ece_prior_corrected": _f(expected_calibration_error(y, p_pr, n_bins)),
            "reliability_prior_corrected": reliability_curve(y, p_pr, n_bins),
        }
    return rep


# --- external confirmation catalogue ---------------------------------------------------------


def pairs_within(cand_ra, cand_dec, ext_ra, ext_dec, radius_arcsec: float):
    """All (external, candidate) pairs closer than the radius -> (i_ext, i_cand, sep arcsec).

    Candidates are sorted by Dec and each external source only looks at the Dec window of
    +-radius (a searchsorted), then astropy computes the exact angular separations. This
    avoids astropy's KD-tree matchers, which need scipy (not a dependency here), and stays
    O((N + M) log N + pairs in the window).
    """
    from astropy import units as u
    from astropy.coordinates.angles import angular_separation

    cand_dec = np.asarray(cand_dec, np.float64)
    order = np.argsort(cand_dec, kind="stable")
    dec_sorted = cand_dec[order]
    r_deg = radius_arcsec / 3600.0
    ext_dec = np.asarray(ext_dec, np.float64)
    lo = np.searchsorted(dec_sorted, ext_dec - r_deg, side="left")
    hi = np.searchsorted(dec_sorted, ext_dec + r_deg, side="right")
    counts = hi - lo
    i_ext = np.repeat(np.arange(len(ext_dec)), counts)
    offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    i_cand = order[np.repeat(lo, counts) + offs]
    sep = angular_separation(
        np.asarray(ext_ra, np.float64)[i_ext] * u.deg,
        ext_dec[i_ext] * u.deg,
        np.asarray(cand_ra, np.float64)[i_cand] * u.deg,
        cand_dec[i_cand] * u.deg,
    ).to_value(u.arcsec)
    keep = sep <= radius_arcsec
    return i_ext[keep], i_cand[keep], sep[keep]


def crossmatch_external(
    cand_ra: np.ndarray,
    cand_dec: np.ndarray,
    cand_wave: np.ndarray,
    cand_sn: np.ndarray,
    p: np.ndarray,
    ext_ra: np.ndarray,
    ext_dec: np.ndarray,
    ext_z: np.ndarray,
    *,
    radius_arcsec: float = 1.5,
    max_dwave: float = 8.0,
    threshold: float = 0.5,
) -> dict:
    """Recovery of externally confirmed LAEs, per regime of the matched candidate.

    An external source matches a candidate within ``radius_arcsec`` on the sky whose line
    wavelength agrees with Lya at the external redshift within ``max_dwave`` A (so another
    line at the same position does not count); the nearest such candidate wins. A matched
    LAE is recovered when that candidate's probability is >= ``threshold``. External
    sources with no matching candidate (not detected, or not in this evaluation set) are
    counted in ``n_unmatched`` and left out of the recovery fraction.
    """
    p, cand_sn = np.asarray(p), np.asarray(cand_sn)
    n_ext = len(ext_ra)
    best = np.full(n_ext, -1, np.int64)
    if n_ext and len(cand_ra):
        i_ext, i_cand, sep = pairs_within(cand_ra, cand_dec, ext_ra, ext_dec, radius_arcsec)
        lya = LYA_REST * (1.0 + np.asarray(ext_z, np.float64))
        ok = np.abs(np.asarray(cand_wave, np.float64)[i_cand] - lya[i_ext]) <= max_dwave
        i_ext, i_cand, sep = i_ext[ok], i_cand[ok], sep[ok]
        order = np.lexsort((sep, i_ext))  # by external source, nearest first
        i_ext, i_cand = i_ext[order], i_cand[order]
        first = np.ones(len(i_ext), bool)
        first[1:] = i_ext[1:] != i_ext[:-1]
        best[i_ext[first]] = i_cand[first]
    matched = best >= 0
    out: dict = {
        "radius_arcsec": radius_arcsec,
        "max_dwave": max_dwave,
        "n_external": int(n_ext),
        "n_unmatched": int((~matched).sum()),
    }
    m_sn = np.where(matched, cand_sn[np.maximum(best, 0)], np.nan)
    m_p = np.where(matched, p[np.maximum(best, 0)], np.nan)
    for reg, mask in regime_masks(np.nan_to_num(m_sn, nan=-1.0)).items():
        sel = matched & mask
        n_rec = int((m_p[sel] >= threshold).sum())
        out[reg] = {
            "n_matched": int(sel.sum()),
            "n_recovered": n_rec,
            "recovery": _f(n_rec / sel.sum()) if sel.any() else None,
        }
    return out


def evaluate(
    y: np.ndarray,
    logits: np.ndarray,
    sn: np.ndarray,
    *,
    temperature: float = 1.0,
    field: np.ndarray | None = None,
    truth_type: np.ndarray | None = None,
    threshold: float = 0.5,
    prior_shift=None,
) -> dict:
    """The full held-out report written into the model card.

    ``logits`` are the model's uncalibrated logits; probabilities are
    sigmoid(logits / temperature). Sections: regimes, per field, per truth type (if given),
    calibration (ECE + reliability before/after temperature scaling, and after the
    per-regime ``prior_shift`` if given).
    """
    y = np.asarray(y, np.float64) >= 0.5
    p = sigmoid(np.asarray(logits) / temperature)
    rep = {
        "threshold": threshold,
        "regimes": metrics_by_regime(y, p, sn, threshold),
        "calibration": calibration_report(y, logits, temperature, sn=sn, prior_shift=prior_shift),
    }
    if field is not None:
        rep["fields"] = metrics_by_group(y, p, sn, field, threshold)
    if truth_type is not None:
        rep["types"] = type_report(truth_type, p, sn, threshold)
    return rep


def balanced_accuracy_interval(
    y: np.ndarray, pred: np.ndarray, level: float = 0.95, draws: int = 4000, seed: int = 0
) -> tuple[float | None, float | None, float | None]:
    """(balanced accuracy, lower, upper): a ``level`` interval from Jeffreys posteriors,
    Beta(k + 1/2, n - k + 1/2), of the true-positive and true-negative rates, sampled and
    averaged (well-behaved at 0 and 1 errors, where a bootstrap collapses to a point).
    (None, None, None) without both classes."""
    y, pred = np.asarray(y, bool), np.asarray(pred, bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return None, None, None
    k1, k0 = int((pred & y).sum()), int((~pred & ~y).sum())
    rng = np.random.default_rng(seed)
    tpr = rng.beta(k1 + 0.5, n1 - k1 + 0.5, draws)
    tnr = rng.beta(k0 + 0.5, n0 - k0 + 0.5, draws)
    b = 0.5 * (tpr + tnr)
    a = (1.0 - level) / 2.0
    return 0.5 * (k1 / n1 + k0 / n0), float(np.quantile(b, a)), float(np.quantile(b, 1 - a))


def heldout_report(y, pred, sn, field=None, level: float = 0.95) -> dict:
    """Balanced accuracy with its interval per S/N regime ('low', 'high') and, with
    ``field``, per field and regime, on a held-out expert sample. A cell without both
    classes has ``balanced_accuracy`` None: not measured."""
    y, pred, sn = np.asarray(y, bool), np.asarray(pred, bool), np.asarray(sn)

    def cells(m: np.ndarray) -> dict:
        out = {}
        for reg, rm in regime_masks(sn).items():
            mm = m & rm
            b, lo, hi = balanced_accuracy_interval(y[mm], pred[mm], level)
            out[reg] = {
                "n": int(mm.sum()),
                "n_real": int((y & mm).sum()),
                "n_false": int((~y & mm).sum()),
                "balanced_accuracy": b,
                "ci_low": lo,
                "ci_high": hi,
            }
        return out

    report = {"level": level, "regimes": cells(np.ones(len(y), bool))}
    if field is not None:
        field = np.asarray(field).astype(str)
        report["fields"] = {str(f): cells(field == f) for f in np.unique(field)}
    return report
