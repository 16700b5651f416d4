"""The promotion gate: a new model goes live only if it is not worse than the live one.

Both models are scored on the same fixed evaluation set and compared per S/N regime by
balanced accuracy. The set is the held-out expert sample (:mod:`labelapp.services.learning.holdout`:
a random sample never trained on) when there is one; else every active gold standard and
expert-labelled candidate, which training also uses, so that fallback sees regressions on
easy candidates only. The new model is rejected, with the reason kept on its row, when it
is worse than the live one in any regime that has both classes in the set by more than the
larger of ``PROMOTION_TOLERANCE`` and two standard errors of the *paired* difference (the
two models judged on the same candidates: only where they disagree is there noise), so a
small set's noise alone never blocks a model. Scientists can promote any earlier version
again (roll back).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from labelapp.errors import Conflict
from labelapp.models import Candidate, ConsensusState, GoldStandard, IngestBatch, ModelVersion
from labelapp.selectors.models import live_model
from labelapp.services.learning.holdout import holdout_labels
from labelapp.services.survey.rendering import open_store
from mlcore.aggregation.evidence import trusted_calls
from mlcore.cnn.data import regime_index, spec_windows
from mlcore.cnn.evaluation import heldout_report, sigmoid
from mlcore.cnn.pipeline import evaluate_rows
from mlcore.cnn.scoring import load_for_scoring

logger = logging.getLogger(__name__)

REGIMES = ("low", "high")


class PromotionError(Conflict):
    pass


HELDOUT_SET = "held-out expert"


def evaluation_set() -> tuple[dict[int, bool], str]:
    """(candidate id -> is real, what the set is): the held-out expert sample if there is
    one, else active gold standards and expert answers."""
    held = holdout_labels()
    if held:
        return held, HELDOUT_SET
    labels = {
        cid: bool(real)
        for cid, real in ConsensusState.objects.filter(expert_label__isnull=False).values_list(
            "candidate_id", "expert_label"
        )
    }
    labels.update(GoldStandard.objects.filter(active=True).values_list("candidate_id", "is_real"))
    return labels, "gold/expert"


@dataclass
class EvaluationRows:
    """The evaluation set's pixels and labels, read once for every model judged on it."""

    cut: np.ndarray
    spec: np.ndarray
    cols: dict[str, np.ndarray]
    y: np.ndarray  # bool

    @classmethod
    def load(cls, labels: dict[int, bool]) -> EvaluationRows:
        fields = ("id", "detectid", "sn", "field", "wave", "batch_id", "row")
        rows = list(
            Candidate.objects.filter(pk__in=list(labels))
            .order_by("batch_id", "row")
            .values_list(*fields)
        )
        if not rows:
            raise PromotionError(
                "the evaluation set is empty: mark gold standards (or resolve expert-queue "
                "candidates, or hold out an expert sample) before promoting models"
            )
        arr = {f: np.asarray([r[i] for r in rows]) for i, f in enumerate(fields)}
        cut, spec = [], []
        for batch_id in np.unique(arr["batch_id"]):
            store = open_store(IngestBatch.objects.get(pk=int(batch_id)).store_path)
            sel = arr["row"][arr["batch_id"] == batch_id]
            cut.append(np.asarray(store.cutouts[sel], np.float32))
            spec.append(np.asarray(store.spec[sel], np.float32))
        cols = {
            "sn": arr["sn"].astype(np.float32),
            "field": arr["field"],
            "detectid": arr["detectid"],
            "wave": arr["wave"],
        }
        y = np.asarray([labels[c] for c in arr["id"].tolist()], bool)
        return cls(np.concatenate(cut), np.concatenate(spec), cols, y)

    def score(self, model_version: ModelVersion) -> tuple[dict[str, dict], np.ndarray]:
        """-> (metrics per regime 'overall', 'low', 'high'; per-candidate verdict, bool)."""
        metrics, logits, _ = self.score_with_prob(model_version)
        return metrics, logits >= 0

    def score_with_prob(self, model_version: ModelVersion):
        """-> (metrics per regime, logits, P(real) as scoring stores it: sigmoid(logit / T))."""
        model = load_for_scoring(model_version.directory, device="cpu")
        win = None
        if model.config.spec_len:
            win = spec_windows(
                self.spec[:, 0], self.spec[:, 1], self.cols["wave"], model.config.spec_len // 2
            )
        metrics, logits = evaluate_rows(model, self.cut, win, self.cols, self.y)
        prob = sigmoid(np.asarray(logits, np.float64) / float(model.temperature))
        return metrics["regimes"], logits, prob


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    reason: str
    new: dict[str, dict]
    current: dict[str, dict] | None


def paired_noise(y: np.ndarray, pred_new: np.ndarray, pred_cur: np.ndarray) -> float:
    """Standard error of the difference in balanced accuracy between two models judged on
    the same candidates ``y``: 0.5 * sqrt(var(d | real) / n_real + var(d | not) / n_not),
    d = (new right) - (live right) per candidate. Where the two agree d is 0, so only their
    disagreements carry noise. A class with no disagreement counts as having one (a
    small set never proves two models identical). 0 when a class is missing."""
    y = np.asarray(y, bool)
    d = (np.asarray(pred_new, bool) == y).astype(float) - (np.asarray(pred_cur, bool) == y)
    var_terms = []
    for cls in (True, False):
        dc = d[y == cls]
        n = len(dc)
        if n == 0:
            return 0.0
        var = float(dc.var(ddof=1)) if n > 1 else 1.0
        var_terms.append(max(var, 1.0 / n) / n)
    return 0.5 * float(np.sqrt(sum(var_terms)))


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
    labels, kind = evaluation_set()
    rows = EvaluationRows.load(labels)
    new, logits_new, prob_new = rows.score_with_prob(model_version)
    pred_new = logits_new >= 0  # temperature scaling keeps the sign
    # which of its confident calls the consensus may hold volunteers to (docs/security.md)
    calls = trusted_calls(
        prob_new,
        rows.y,
        confident=settings.MODEL_CONFIDENT,
        min_precision=settings.MODEL_CALL_PRECISION,
        min_calls=settings.MODEL_CALL_MIN,
    )
    current_model = live_model()
    current, pred_cur = rows.score(current_model) if current_model else (None, None)
    regime = regime_index(rows.cols["sn"])
    worse = []
    for name, r in zip(REGIMES, (0, 1), strict=True):
        b_new = _bacc(new, name)
        if b_new is None:
            continue
        if current is None:
            if b_new < 0.5:
                worse.append(f"{name} S/N balanced accuracy {b_new:.3f} is below chance")
            continue
        b_cur = _bacc(current, name)
        m = regime == r
        allowed = max(tol, 2 * paired_noise(rows.y[m], pred_new[m], pred_cur[m]))
        if b_cur is not None and b_new < b_cur - allowed:
            worse.append(
                f"{name} S/N balanced accuracy {b_new:.3f} < live v{current_model.pk}'s "
                f"{b_cur:.3f} - {allowed:.3f} (tolerance, or 2 standard errors of the "
                "difference on this set)"
            )
    n = len(labels)
    now = timezone.now().isoformat(timespec="seconds")
    # Kept on the card so the console can show every model on the fixed evaluation set.
    # The console's headline figure is ``heldout``: only a sample training never saw gives
    # one (with its interval, per regime and field); on gold/expert labels it is None.
    heldout = None
    if kind == HELDOUT_SET:
        heldout = heldout_report(rows.y, pred_new, rows.cols["sn"], rows.cols["field"])
        heldout |= {"n_labels": n, "evaluated_utc": now}
    model_version.card = dict(model_version.card) | {
        "gate": {
            "n_labels": n,
            "set": kind,
            "regimes": new,
            "live_model": current_model.pk if current_model else None,
            "evaluated_utc": now,
            "confident_calls": calls | {"threshold": settings.MODEL_CONFIDENT},
        },
        "heldout": heldout,
    }
    model_version.trust_real_calls = calls["real"]["trusted"]
    model_version.trust_false_calls = calls["false"]["trusted"]
    ModelVersion.objects.filter(pk=model_version.pk).update(
        card=model_version.card,
        trust_real_calls=model_version.trust_real_calls,
        trust_false_calls=model_version.trust_false_calls,
    )
    if worse:
        reason = f"rejected on {n} {kind} labels: " + "; ".join(worse)
        ModelVersion.objects.filter(pk=model_version.pk).update(
            status=ModelVersion.Status.REJECTED, status_reason=reason
        )
        model_version.status, model_version.status_reason = ModelVersion.Status.REJECTED, reason
        logger.info("model v%s %s", model_version.pk, reason)
        return GateDecision(False, reason, new, current)
    if heldout is not None:
        cells = heldout["regimes"]
        summary = (
            ", ".join(
                f"{r} {cells[r]['balanced_accuracy']:.3f} "
                f"[{cells[r]['ci_low']:.3f}, {cells[r]['ci_high']:.3f}]"
                for r in REGIMES
                if cells[r]["balanced_accuracy"] is not None
            )
            or "no regime with both classes"
        )
        summary = f"held-out balanced accuracy {summary}"
    else:
        # gold standards and expert answers are trained on: a figure there is no measure
        summary = "not worse than the live model there; no accuracy is quoted on labels "
        summary += "the model trained on: hold out an expert sample to measure one"
    reason = f"promoted on {n} {kind} labels ({summary}" + (
        f"; live was v{current_model.pk})" if current_model else ")"
    )
    promote_model(model_version=model_version, reason=reason)
    logger.info("model v%s %s", model_version.pk, reason)
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
