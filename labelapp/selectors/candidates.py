"""Candidates for the console: the attribution gallery and everything about one candidate."""

from __future__ import annotations

from django.core.cache import cache
from django.db.models import F, Func

from labelapp.models import (
    Candidate,
    CandidateScore,
    CandidateTruth,
    ConsensusState,
    GoldStandard,
    Label,
    RetirementEvent,
    RoundCandidate,
    VolunteerSkill,
    Vote,
)
from labelapp.selectors.regimes import regime_q
from labelapp.selectors.volunteers import pseudonym

GALLERY_PER_SECTION = 8
GALLERY_TTL_S = 300
DISAGREE_MIN_VOTES = 3  # the crowd needs a few votes before its disagreement means much

SECTIONS = (
    ("real", "Most confident real"),
    ("artefact", "Most confident artefact"),
    ("uncertain", "Most uncertain (highest BALD: the model's own doubt)"),
    ("disagree", "Model versus crowd: the largest disagreements"),
)


class _Abs(Func):
    function = "ABS"


def _score_rows(qs, n: int) -> list[dict]:
    return list(
        qs.values(
            "candidate__detectid",
            "candidate__sn",
            "candidate__wave",
            "candidate__status",
            "prob",
            "entropy",
            "bald",
            "candidate__consensus__posterior",
            "candidate__consensus__n_votes",
        )[:n]
    )


def gallery(*, model_version_id: int, regime: str = "", n: int = GALLERY_PER_SECTION) -> dict:
    """Four lists of candidates scored by one model (each an ORDER BY ... LIMIT in the
    database), cached for a few minutes per (model, regime)."""
    key = f"console:gallery:{model_version_id}:{regime}:{n}"
    found = cache.get(key)
    if found is not None:
        return found
    qs = CandidateScore.objects.filter(model_version_id=model_version_id)
    if regime in ("low", "high"):
        qs = qs.filter(regime_q(regime, "candidate__sn"))
    disagree = (
        qs.filter(candidate__consensus__n_votes__gte=DISAGREE_MIN_VOTES)
        .annotate(gap=_Abs(F("prob") - F("candidate__consensus__posterior")))
        .order_by("-gap")
    )
    out = {
        "real": _score_rows(qs.order_by("-prob"), n),
        "artefact": _score_rows(qs.order_by("prob"), n),
        "uncertain": _score_rows(qs.order_by("-bald"), n),
        "disagree": _score_rows(disagree, n),
    }
    cache.set(key, out, GALLERY_TTL_S)
    return out


def candidate_dossier(candidate: Candidate) -> dict:
    """Everything known about one candidate: votes (pseudonymised), the posterior over
    time, every model's score, rounds, gold and simulation truth."""
    regime = 0 if candidate.regime == "low" else 1
    skills = {
        s["volunteer_id"]: s
        for s in VolunteerSkill.objects.filter(
            regime=regime, volunteer__votes__candidate=candidate
        ).values("volunteer_id", "sens_alpha", "sens_beta", "spec_alpha", "spec_beta")
    }
    votes = []
    for v in Vote.objects.filter(candidate=candidate).order_by("created_at"):
        s = skills.get(v.volunteer_id)
        votes.append(
            {
                "who": pseudonym(v.volunteer_id),
                "answer": v.answer,
                "reason": v.reason,
                "created_at": v.created_at,
                "was_gold": v.was_gold,
                "client": v.client,
                "sens": s and s["sens_alpha"] / (s["sens_alpha"] + s["sens_beta"]),
                "spec": s and s["spec_alpha"] / (s["spec_alpha"] + s["spec_beta"]),
            }
        )
    labels = list(
        Label.objects.filter(candidate=candidate)
        .select_related("run")
        .order_by("run__started_at")
        .values("run_id", "run__started_at", "run__method", "posterior", "n_votes", "is_real")
    )
    return {
        "candidate": candidate,
        "votes": votes,
        "labels": labels,
        "consensus": ConsensusState.objects.filter(candidate=candidate).first(),
        "events": list(RetirementEvent.objects.filter(candidate=candidate).order_by("created_at")),
        "scores": list(
            CandidateScore.objects.filter(candidate=candidate)
            .select_related("model_version")
            .order_by("-model_version_id")
        ),
        "rounds": list(
            RoundCandidate.objects.filter(candidate=candidate)
            .select_related("round")
            .order_by("round__number")
        ),
        "gold": GoldStandard.objects.filter(candidate=candidate).first(),
        "truth": CandidateTruth.objects.filter(candidate=candidate).first(),
    }


def posterior_figure(dossier: dict) -> dict | None:
    """The crowd's posterior after each aggregation run, plus the live value now."""
    labels = dossier["labels"]
    x = [lab["run__started_at"].isoformat() for lab in labels]
    y = [lab["posterior"] for lab in labels]
    text = [f"run {lab['run_id']} ({lab['run__method']}), {lab['n_votes']} votes" for lab in labels]
    cs = dossier["consensus"]
    if cs is not None:
        x.append(cs.updated_at.isoformat())
        y.append(cs.posterior)
        text.append(f"live, {cs.n_votes} votes")
    if len(x) < 2:
        return None  # one value is a sentence (the page says it), not a time series
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": x,
                "y": y,
                "text": text,
                "name": "P(real)",
            }
        ],
        "layout": {
            "title": {"text": "Crowd posterior over time"},
            "xaxis": {"type": "date", "tickformat": "%b %d %H:%M", "nticks": 6, "automargin": True},
            "yaxis": {"title": {"text": "P(real)"}, "range": [-0.02, 1.02], "automargin": True},
        },
    }
