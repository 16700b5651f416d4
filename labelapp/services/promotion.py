"""The promotion gate: a new model goes live only if it is not worse than the live one.

Both models are scored on the same fixed evaluation set -- every active gold standard and
every expert-labelled candidate, as they are now -- and compared per S/N regime by balanced
accuracy. The new model is rejected, with the reason kept on its row, when it is worse than
the live one in any regime that has both classes in the set by more than the larger of
``PROMOTION_TOLERANCE`` and two standard errors of the live model's balanced accuracy on
that set (so a small set's noise alone never blocks a model). Scientists can promote any
earlier version again (roll back).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from labelapp.models import Candidate, ConsensusState, GoldStandard, IngestBatch, ModelVersion
from labelapp.selectors.models import live_model
from labelapp.services.rendering import open_store
from mlcore.cnn.data import spec_windows
from mlcore.cnn.scoring import load_for_scoring
from mlcore.train import evaluate_rows

REGIMES = ("low", "high")


class PromotionError(Exception):
    pass


def evaluation_set() -> dict[int, bool]:
    """candidate id -> is real, from active gold standards and expert answers."""
    labels = {
        cid: bool(real)
        for cid, real in ConsensusState.objects.filter(expert_label__isnull=False).values_list(
            "candidate_id", "expert_label"
        )
    }
    labels.update(GoldStandard.objects.filter(active=True).values_list("candidate_id", "is_real"))
    return labels


def evaluate_on_set(model_version: ModelVersion, labels: dict[int, bool]) -> dict[str, dict]:
    """Metrics per regime ('overall', 'low', 'high') of one model on the given labels."""
    fields = ("id", "detectid", "sn", "field", "wave", "batch_id", "row")
    rows = list(
        Candidate.objects.filter(pk__in=list(labels))
        .order_by("batch_id", "row")
        .values_list(*fields)
    )
    if not rows:
        raise PromotionError(
            "the evaluation set is empty: mark gold standards (or resolve "
            "expert-queue candidates) before promoting models"
        )
    arr = {f: np.asarray([r[i] for r in rows]) for i, f in enumerate(fields)}
    cut, spec = [], []
    for batch_id in np.unique(arr["batch_id"]):
        store = open_store(IngestBatch.objects.get(pk=int(batch_id)).store_path)
        sel = arr["row"][arr["batch_id"] == batch_id]
        cut.append(np.asarray(store.cutouts[sel], np.float32))
        spec.append(np.asarray(store.spec[sel], np.float32))
    cut, spec = np.concatenate(cut), np.concatenate(spec)
    model = load_for_scoring(model_version.directory, device="cpu")
    win = None
    if model.config.spec_len:
        win = spec_windows(spec[:, 0], spec[:, 1], arr["wave"], model.config.spec_len // 2)
    y = np.asarray([labels[c] for c in arr["id"].tolist()])
    cols = {"sn": arr["sn"].astype(np.float32), "field": arr["field"], "detectid": arr["detectid"]}
    metrics, _ = evaluate_rows(model, cut, win, cols, y)
    return metrics["regimes"]


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    reason: str
    new: dict[str, dict]
    current: dict[str, dict] | None


def _noise(metrics: dict, regime: str) -> float:
    """Standard error of a balanced accuracy measured on this set: the gate does not call a
    model worse for a drop that the size of the evaluation set cannot resolve."""
    m = metrics.get(regime) or {}
    n_real, n_false = m.get("n_real") or 0, m.get("n_false") or 0
    if not n_real or not n_false:
        return 0.0
    # Laplace-smoothed rates: a perfect score on a small set is not proof of no error (the
    # raw binomial SE would be 0, and then one mistake by a new model rejected it).
    tpr = (m["tp"] + 1) / (n_real + 2)
    tnr = (m["tn"] + 1) / (n_false + 2)
    return 0.5 * float(np.sqrt(tpr * (1 - tpr) / n_real + tnr * (1 - tnr) / n_false))


def _bacc(metrics: dict, regime: str) -> float | None:
    m = metrics.get(regime) or {}
    if not m.get("n_real") or not m.get("n_false"):
        return None  # one class only in this regime: balanced accuracy says nothing
    return m.get("balanced_accuracy")


def gate_model(*, model_version: ModelVersion, tolerance: float | None = None) -> GateDecision:
    """Promote ``model_version`` if it passes the gate, else mark it rejected with why."""
    tol = settings.PROMOTION_TOLERANCE if tolerance is None else tolerance
    if model_version.status != ModelVersion.Status.CANDIDATE:
        raise PromotionError(
            f"model v{model_version.pk} is {model_version.status}, not a "
            "candidate: only newly trained models go through the gate"
        )
    labels = evaluation_set()
    new = evaluate_on_set(model_version, labels)
    current_model = live_model()
    current = evaluate_on_set(current_model, labels) if current_model else None
    worse = []
    for regime in REGIMES:
        b_new = _bacc(new, regime)
        if b_new is None:
            continue
        if current is None:
            if b_new < 0.5:
                worse.append(f"{regime} S/N balanced accuracy {b_new:.3f} is below chance")
            continue
        b_cur = _bacc(current, regime)
        allowed = max(tol, 2 * _noise(current, regime))
        if b_cur is not None and b_new < b_cur - allowed:
            worse.append(
                f"{regime} S/N balanced accuracy {b_new:.3f} < live v{current_model.pk}'s "
                f"{b_cur:.3f} - {allowed:.3f} (tolerance, or 2 standard errors on this set)"
            )
    n = len(labels)
    # Kept on the card so the console can show every model on the fixed evaluation set.
    model_version.card = dict(model_version.card) | {
        "gate": {
            "n_labels": n,
            "regimes": new,
            "live_model": current_model.pk if current_model else None,
            "evaluated_utc": timezone.now().isoformat(timespec="seconds"),
        }
    }
    ModelVersion.objects.filter(pk=model_version.pk).update(card=model_version.card)
    if worse:
        reason = f"rejected on {n} gold/expert labels: " + "; ".join(worse)
        ModelVersion.objects.filter(pk=model_version.pk).update(
            status=ModelVersion.Status.REJECTED, status_reason=reason
        )
        model_version.status, model_version.status_reason = ModelVersion.Status.REJECTED, reason
        return GateDecision(False, reason, new, current)
    summary = (
        ", ".join(f"{r} {_bacc(new, r):.3f}" for r in REGIMES if _bacc(new, r) is not None)
        or "no regime with both classes"
    )
    reason = f"promoted on {n} gold/expert labels (balanced accuracy {summary}" + (
        f"; live was v{current_model.pk})" if current_model else ")"
    )
    promote_model(model_version=model_version, reason=reason)
    return GateDecision(True, reason, new, current)


def promote_model(*, model_version: ModelVersion, reason: str) -> ModelVersion:
    """Make ``model_version`` the live model (also the roll-back path); the old one retires."""
    with transaction.atomic():
        ModelVersion.objects.select_for_update().filter(
            status=ModelVersion.Status.PROMOTED
        ).exclude(pk=model_version.pk).update(status=ModelVersion.Status.RETIRED)
        ModelVersion.objects.filter(pk=model_version.pk).update(
            status=ModelVersion.Status.PROMOTED, status_reason=reason
        )
    model_version.status, model_version.status_reason = ModelVersion.Status.PROMOTED, reason
    return model_version


def roll_back_to(*, model_version: ModelVersion, user=None) -> ModelVersion:
    model_version.refresh_from_db(fields=["status"])
    if model_version.status == ModelVersion.Status.PROMOTED:
        raise PromotionError(f"model v{model_version.pk} is already live")
    who = f" by {user}" if user is not None else ""
    return promote_model(model_version=model_version, reason=f"rolled back to{who}")
