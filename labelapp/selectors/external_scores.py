"""Scores from outside the platform (HETDEX PDR1's ``p_cnn``) against the platform's own.

The console's external page shows, for each kept external score: how well it separates the
platform's current labels (ROC AUC with a 95 % interval, agreement at 0.5 with a Wilson
interval) and how it compares with the live model's P(real) on the same candidates
(agreement at 0.5, Spearman rank correlation, and a scatter of up to ``MAX_POINTS``).
Labels are the latest finished aggregation run's; neither p_cnn nor the labels were used to
fit the other, so these are not in-sample figures of ours. With no label or no score the
figure says "not measured".
"""

from __future__ import annotations

import math

import numpy as np

from labelapp.models import AggregationRun, CandidateScore, ExternalScore, Label
from labelapp.selectors.models import live_model
from mlcore.cnn.evaluation import roc_auc

MAX_POINTS = 2000
Z95 = 1.959964


def _wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + Z95**2 / n
    mid = (p + Z95**2 / (2 * n)) / den
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def _auc_interval(auc: float, n_pos: int, n_neg: int) -> tuple[float, float]:
    """Hanley & McNeil (1982) standard error -> a 95 % interval."""
    if not math.isfinite(auc) or n_pos == 0 or n_neg == 0:
        return (math.nan, math.nan)
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (
        n_pos * n_neg
    )
    se = math.sqrt(max(var, 0.0))
    return (max(0.0, auc - Z95 * se), min(1.0, auc + Z95 * se))


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3:
        return math.nan
    ra = np.argsort(np.argsort(a, kind="mergesort"), kind="mergesort").astype(np.float64)
    rb = np.argsort(np.argsort(b, kind="mergesort"), kind="mergesort").astype(np.float64)
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def external_score_comparisons() -> list[dict]:
    """One comparison per (source, name) of external scores in the database."""
    pairs = (
        ExternalScore.objects.values_list("source", "name").distinct().order_by("source", "name")
    )
    return [compare_external_score(source=s, name=n) for s, n in pairs]


def compare_external_score(*, source: str, name: str, threshold: float = 0.5) -> dict:
    qs = ExternalScore.objects.filter(source=source, name=name)
    n_total = qs.count()
    n_missing = qs.filter(value__isnull=True).count()
    out: dict = {"source": source, "name": name, "n": n_total, "n_missing": n_missing}

    run = (
        AggregationRun.objects.filter(status=AggregationRun.Status.DONE)
        .order_by("-started_at", "-pk")
        .first()
    )
    labels = {"run": run.pk if run else None, "measured": False}
    if run is not None:
        rows = list(
            Label.objects.filter(
                run=run,
                candidate__external_scores__source=source,
                candidate__external_scores__name=name,
                candidate__external_scores__value__isnull=False,
            ).values_list("is_real", "candidate__external_scores__value")
        )
        if rows:
            y = np.array([r[0] for r in rows], bool)
            s = np.array([r[1] for r in rows], np.float64)
            n_pos, n_neg = int(y.sum()), int((~y).sum())
            auc = roc_auc(y, s)
            agree = int(((s >= threshold) == y).sum())
            labels.update(
                measured=True,
                n=len(y),
                n_real=n_pos,
                auc=auc,
                auc_ci=_auc_interval(auc, n_pos, n_neg),
                agreement=agree / len(y),
                agreement_ci=_wilson(agree, len(y)),
            )
    out["labels"] = labels

    model = live_model()
    vs_model = {"model": model, "measured": False}
    if model is not None:
        scored = dict(
            CandidateScore.objects.filter(
                model_version=model,
                candidate__external_scores__source=source,
                candidate__external_scores__name=name,
                candidate__external_scores__value__isnull=False,
            ).values_list("candidate_id", "prob")
        )
        ext = dict(
            qs.filter(candidate_id__in=list(scored), value__isnull=False).values_list(
                "candidate_id", "value"
            )
        )  # joined by candidate id, never by position
        ids = sorted(set(scored) & set(ext))
        if ids:
            ours = np.array([scored[i] for i in ids], np.float64)
            theirs = np.array([ext[i] for i in ids], np.float64)
            agree = int(((ours >= threshold) == (theirs >= threshold)).sum())
            pick = np.linspace(0, len(ids) - 1, min(len(ids), MAX_POINTS)).astype(int)
            vs_model.update(
                measured=True,
                n=len(ids),
                agreement=agree / len(ids),
                agreement_ci=_wilson(agree, len(ids)),
                spearman=_spearman(ours, theirs),
                figure={
                    "data": [
                        {
                            "type": "scattergl",
                            "mode": "markers",
                            "x": theirs[pick].round(4).tolist(),
                            "y": ours[pick].round(4).tolist(),
                            "marker": {"size": 4, "opacity": 0.5},
                            "name": "candidates",
                        }
                    ],
                    "layout": {
                        "xaxis": {"title": f"{name} ({source})", "range": [0, 1]},
                        "yaxis": {"title": f"P(real), live model #{model.pk}", "range": [0, 1]},
                        "height": 360,
                        "margin": {"t": 20},
                    },
                },
            )
    out["model"] = vs_model
    out["threshold"] = threshold
    return out
